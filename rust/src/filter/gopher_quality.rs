//! Gopher quality rules (Rae et al. 2021, table A1), as datatrove's
//! `GopherQualityFilter` defines them. A threshold of `None` turns its rule off.

use rustc_hash::FxHashSet;

use super::text::{is_alpha, is_punctuation, py_len, splitlines};
use super::{words, Reason};

#[derive(Clone, Debug)]
pub struct GopherQuality {
    pub min_doc_words: Option<usize>,
    pub max_doc_words: Option<usize>,
    pub min_avg_word_length: Option<f64>,
    pub max_avg_word_length: Option<f64>,
    pub max_symbol_word_ratio: Option<f64>,
    pub max_bullet_lines_ratio: Option<f64>,
    pub max_ellipsis_lines_ratio: Option<f64>,
    pub max_non_alpha_words_ratio: Option<f64>,
    pub min_stop_words: Option<usize>,
    pub stop_words: Vec<String>,
}

impl Default for GopherQuality {
    fn default() -> Self {
        GopherQuality {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// datatrove tests thresholds for truthiness: 0 switches a rule off too.
fn on<T: Default + PartialEq + Copy>(x: Option<T>) -> Option<T> {
    x.filter(|v| *v != T::default())
}

/// Non-overlapping occurrences, as `str.count`.
fn count(text: &str, pat: &str) -> usize {
    text.matches(pat).count()
}

impl GopherQuality {
    /// None to keep `text`, else the rule that drops it.
    pub fn check(&self, text: &str) -> Option<Reason> {
        let words = words::words(text);
        let n_words = words.len();
        let (mut n_content, mut content_chars) = (0usize, 0usize);
        for w in &words {
            if w.chars().any(|c| !is_punctuation(c)) {
                n_content += 1;
                content_chars += py_len(w);
            }
        }
        if on(self.min_doc_words).is_some_and(|m| n_content < m) {
            return Some("gopher_short_doc".into());
        }
        if on(self.max_doc_words).is_some_and(|m| n_content > m) {
            return Some("gopher_long_doc".into());
        }
        // numpy's mean of nothing is NaN, which fails every comparison
        let avg = content_chars as f64 / n_content as f64;
        if on(self.min_avg_word_length).is_some_and(|m| avg < m) {
            return Some("gopher_below_avg_threshold".into());
        }
        if on(self.max_avg_word_length).is_some_and(|m| avg > m) {
            return Some("gopher_above_avg_threshold".into());
        }
        if let Some(m) = on(self.max_symbol_word_ratio) {
            let nw = n_words as f64;
            if count(text, "#") as f64 / nw > m {
                return Some("gopher_too_many_hashes".into());
            }
            if (count(text, "...") + count(text, "…")) as f64 / nw > m {
                return Some("gopher_too_many_ellipsis".into());
            }
        }
        let lines = splitlines(text);
        let nl = lines.len() as f64;
        if let Some(m) = on(self.max_bullet_lines_ratio) {
            let b = lines
                .iter()
                .filter(|l| {
                    let l = l.trim_start_matches(super::text::is_space);
                    l.starts_with('•') || l.starts_with('-')
                })
                .count();
            if b as f64 / nl > m {
                return Some("gopher_too_many_bullets".into());
            }
        }
        if let Some(m) = on(self.max_ellipsis_lines_ratio) {
            let e = lines
                .iter()
                .filter(|l| {
                    let l = l.trim_end_matches(super::text::is_space);
                    l.ends_with("...") || l.ends_with('…')
                })
                .count();
            if e as f64 / nl > m {
                return Some("gopher_too_many_end_ellipsis".into());
            }
        }
        if let Some(m) = on(self.max_non_alpha_words_ratio) {
            let a = words.iter().filter(|w| w.chars().any(is_alpha)).count();
            if (a as f64 / n_words as f64) < m {
                return Some("gopher_below_alpha_threshold".into());
            }
        }
        if let Some(m) = on(self.min_stop_words) {
            let found: FxHashSet<&str> = words
                .iter()
                .copied()
                .filter(|w| self.stop_words.iter().any(|s| s == w))
                .collect();
            if found.len() < m {
                return Some("gopher_enough_stop_words".into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose(n: usize) -> String {
        "The cat sat on the mat with a hat and that was good. ".repeat(n)
    }

    #[test]
    fn rules_fire_with_their_names() {
        let f = GopherQuality::default();
        assert_eq!(f.check(&prose(10)), None);
        assert_eq!(f.check("the and of").as_deref(), Some("gopher_short_doc"));
        let hashes = format!("{} {}", prose(10), "# ".repeat(100));
        assert_eq!(f.check(&hashes).as_deref(), Some("gopher_too_many_hashes"));
        let bullets = "- the cattle walked along to the market with their owners\n".repeat(20);
        assert_eq!(
            f.check(&bullets).as_deref(),
            Some("gopher_too_many_bullets")
        );
        let nostop = "Cats sit on mats wearing hats daily. ".repeat(20);
        assert_eq!(
            f.check(&nostop).as_deref(),
            Some("gopher_enough_stop_words")
        );
        let numbers = format!("{} {}", prose(2), "1 2 3 4 ".repeat(100));
        assert_eq!(
            f.check(&numbers).as_deref(),
            Some("gopher_below_avg_threshold")
        );
    }

    #[test]
    fn zero_switches_a_rule_off() {
        let f = GopherQuality {
            min_doc_words: Some(0),
            min_stop_words: None,
            min_avg_word_length: None,
            ..Default::default()
        };
        assert_eq!(f.check("the and of"), None);
    }
}
