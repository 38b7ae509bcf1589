//! FineWeb's own quality rules (Penedo et al. 2024) as datatrove's
//! `FineWebQualityFilter` defines them: too few lines ending in
//! punctuation, too many short lines, duplicated lines, too many newlines
//! per word (lists).

use super::gopher_repetition::find_duplicates;
use super::text::{is_terminal, py_len, strip};
use super::{words, Reason};

#[derive(Clone, Debug)]
pub struct FineWeb {
    pub line_punct_thr: f64,
    pub line_punct_exclude_zero: bool,
    /// Characters that count as line-final punctuation; None for datatrove's
    /// TERMINAL_PUNCTUATION.
    pub stop_chars: Option<Vec<char>>,
    pub short_line_thr: f64,
    pub short_line_length: usize,
    pub char_duplicates_ratio: f64,
    pub new_line_ratio: f64,
}

impl Default for FineWeb {
    fn default() -> Self {
        FineWeb {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            stop_chars: None,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

impl FineWeb {
    /// None to keep `text`, else the rule that drops it.
    pub fn check(&self, text: &str) -> Option<Reason> {
        let lines: Vec<&str> = text.split('\n').filter(|l| !strip(l).is_empty()).collect();
        if lines.is_empty() {
            return Some("empty".into());
        }
        let n = lines.len() as f64;
        let ends = |l: &&&str| {
            l.chars()
                .next_back()
                .is_some_and(|c| match &self.stop_chars {
                    Some(s) => s.contains(&c),
                    None => is_terminal(c),
                })
        };
        let ratio = lines.iter().filter(ends).count() as f64 / n;
        if ratio < self.line_punct_thr && !(ratio == 0.0 && self.line_punct_exclude_zero) {
            return Some("line_punct_ratio".into());
        }
        let short = lines
            .iter()
            .filter(|l| py_len(l) <= self.short_line_length)
            .count();
        if short as f64 / n > self.short_line_thr {
            return Some("short_line_ratio".into());
        }
        let (_, dup_chars) = find_duplicates(lines.iter().copied());
        let newlines = text.bytes().filter(|&b| b == b'\n').count();
        let non_newline = py_len(text) - newlines;
        if dup_chars as f64 / non_newline as f64 > self.char_duplicates_ratio {
            return Some("char_dup_ratio".into());
        }
        let n_words = words::words(text).len();
        if newlines as f64 / n_words as f64 > self.new_line_ratio {
            return Some("list_ratio".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_with_their_names() {
        let f = FineWeb::default();
        let good = "A line of prose that ends with a full stop as it should.\n\
                    Another line, different, also long enough to count as prose here.";
        assert_eq!(f.check(good), None);
        assert_eq!(f.check("\n \n").as_deref(), Some("empty"));
        assert_eq!(
            f.check("no punctuation at all\nnone here either")
                .as_deref(),
            Some("line_punct_ratio")
        );
        assert_eq!(
            f.check("Short.\nLines.\nOnly.").as_deref(),
            Some("short_line_ratio")
        );
        let dup = format!(
            "{good}\n{}",
            "A line of prose that ends with a full stop as it should."
        );
        assert_eq!(f.check(&dup).as_deref(), Some("char_dup_ratio"));
    }
}
