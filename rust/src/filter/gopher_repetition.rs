//! Gopher repetition rules (Rae et al. 2021, table A1), as datatrove's
//! `GopherRepetitionFilter` defines them: duplicate lines and paragraphs,
//! the most frequent word 2-4-gram, and duplicated 5-10-grams, each as a
//! fraction of the document's characters.

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

use super::text::{py_len, strip};
use super::{words, Reason};

#[derive(Clone, Debug)]
pub struct GopherRepetition {
    pub dup_line_frac: Option<f64>,
    pub dup_para_frac: Option<f64>,
    pub dup_line_char_frac: Option<f64>,
    pub dup_para_char_frac: Option<f64>,
    /// (n, max fraction of characters in the most frequent n-gram)
    pub top_n_grams: Vec<(usize, f64)>,
    /// (n, max fraction of characters in duplicated n-grams)
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetition {
    fn default() -> Self {
        GopherRepetition {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

/// (repeated elements, their characters) as datatrove's `find_duplicates`:
/// every occurrence after the first counts.
pub fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let (mut n, mut chars) = (0, 0);
    for x in items {
        if !seen.insert(x) {
            n += 1;
            chars += py_len(x);
        }
    }
    (n, chars)
}

/// Splits at runs of at least `min` newlines (`re.split(r"\n{min,}")`).
fn split_newlines(text: &str, min: usize) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'\n' {
            let j = i + b[i..].iter().take_while(|&&c| c == b'\n').count();
            if j - i >= min {
                out.push(&text[start..i]);
                start = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&text[start..]);
    out
}

/// Per-word hashes and character offsets, so that an n-gram's key is a
/// mix of n word hashes and its length a difference of two offsets (no
/// per-n-gram string). datatrove keys n-grams by their joined text; as
/// words never contain the separator " " the two agree for `top_n_grams`,
/// and for `dup_n_grams` (joined with "") they differ only where two
/// different splits glue to the same string ("ab c" vs "a bc").
struct Joined {
    hash: Vec<u64>,
    chars: Vec<usize>,
}

impl Joined {
    fn new(words: &[&str], sep: &str) -> Self {
        let sep_len = py_len(sep);
        let mut chars = Vec::with_capacity(words.len() + 1);
        let mut nc = 0;
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                nc += sep_len;
            }
            chars.push(nc);
            nc += py_len(w);
        }
        chars.push(nc + sep_len);
        let hash = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        Joined { hash, chars }
    }

    /// Key and character length of words[i..i+n].
    fn gram(&self, i: usize, n: usize, sep: usize) -> (u64, usize) {
        let mut k = n as u64;
        for &h in &self.hash[i..i + n] {
            k = (k.rotate_left(23) ^ h).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (k, self.chars[i + n] - sep - self.chars[i])
    }
}

/// Characters of the most frequent n-gram times its count; among equally
/// frequent ones the first seen wins (`Counter.most_common(1)`).
fn top_duplicate(j: &Joined, n_words: usize, n: usize) -> usize {
    let mut counts: FxHashMap<u64, (usize, usize, usize)> =
        FxHashMap::with_capacity_and_hasher(n_words, Default::default());
    for i in 0..=n_words - n {
        let (k, len) = j.gram(i, n, 1);
        let e = counts.entry(k).or_insert((0, i, len));
        e.0 += 1;
    }
    counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map_or(0, |&(c, _, len)| c * len)
}

/// datatrove's `find_all_duplicate`: characters of n-grams (words joined
/// without spaces) seen before, skipping past each repeat.
fn all_duplicate(j: &Joined, n_words: usize, n: usize) -> usize {
    // sized up front: growing the set was most of this function's time
    let mut seen: FxHashSet<u64> = FxHashSet::with_capacity_and_hasher(n_words, Default::default());
    let (mut rep, mut i) = (0, 0);
    while i + n <= n_words {
        let (k, len) = j.gram(i, n, 0);
        if seen.insert(k) {
            i += 1;
        } else {
            rep += len;
            i += n;
        }
    }
    rep
}

impl GopherRepetition {
    /// None to keep `text`, else the rule that drops it.
    pub fn check(&self, text: &str) -> Option<Reason> {
        if text.is_empty() {
            return Some("empty".into());
        }
        let n_chars = py_len(text) as f64;
        let paragraphs = split_newlines(strip(text), 2);
        let (dup, chars) = find_duplicates(paragraphs.iter().copied());
        if on(self.dup_para_frac).is_some_and(|m| dup as f64 / paragraphs.len() as f64 > m) {
            return Some("dup_para_frac".into());
        }
        if on(self.dup_para_char_frac).is_some_and(|m| chars as f64 / n_chars > m) {
            return Some("dup_para_char_frac".into());
        }
        let lines = split_newlines(text, 1);
        let (dup, chars) = find_duplicates(lines.iter().copied());
        if on(self.dup_line_frac).is_some_and(|m| dup as f64 / lines.len() as f64 > m) {
            return Some("dup_line_frac".into());
        }
        if on(self.dup_line_char_frac).is_some_and(|m| chars as f64 / n_chars > m) {
            return Some("dup_line_char_frac".into());
        }
        if self.top_n_grams.is_empty() && self.dup_n_grams.is_empty() {
            return None;
        }
        let words = words::words(text);
        let nw = words.len();
        if self.top_n_grams.iter().any(|&(n, _)| n > 0 && n <= nw) {
            let spaced = Joined::new(&words, " ");
            for &(n, frac) in &self.top_n_grams {
                if n == 0 || n > nw {
                    continue;
                }
                if top_duplicate(&spaced, nw, n) as f64 / n_chars > frac {
                    return Some(format!("top_{n}_gram").into());
                }
            }
        }
        let glued = Joined::new(&words, "");
        for &(n, frac) in &self.dup_n_grams {
            let rep = if n == 0 || n > nw {
                0
            } else {
                all_duplicate(&glued, nw, n)
            };
            if rep as f64 / n_chars > frac {
                return Some(format!("duplicated_{n}_n_grams").into());
            }
        }
        None
    }
}

fn on(x: Option<f64>) -> Option<f64> {
    x.filter(|v| *v != 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_like_datatrove() {
        assert_eq!(find_duplicates(["a", "bb", "a", "bb", "bb"]), (3, 5));
        assert_eq!(split_newlines("a\n\nb\n\n\nc\nd", 2), ["a", "b", "c\nd"]);
        assert_eq!(split_newlines("\na\n", 1), ["", "a", ""]);
        let w = ["a", "b", "a", "b", "a", "b"];
        let j = Joined::new(&w, "");
        // "ab" seen, "ba" new, "ab" repeat (+2, skip 2), "ab" repeat (+2)
        assert_eq!(all_duplicate(&j, 6, 2), 4);
        let s = Joined::new(&w, " ");
        assert_eq!(top_duplicate(&s, 6, 2), 9); // "a b" x3
    }

    #[test]
    fn rules_fire_with_their_names() {
        let f = GopherRepetition::default();
        let good: String = (0..200).map(|i| format!("word{i} ")).collect();
        assert_eq!(f.check(&good), None);
        assert_eq!(f.check("").as_deref(), Some("empty"));
        let paras = "same paragraph\n\n".repeat(5);
        assert_eq!(f.check(&paras).as_deref(), Some("dup_para_frac"));
        let grams = "buy now buy now buy now cheap pills here";
        assert_eq!(f.check(grams).as_deref(), Some("top_2_gram"));
    }
}
