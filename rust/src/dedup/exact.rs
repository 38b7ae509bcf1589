//! Exact duplicates by a 128-bit content hash (xxh3).
//!
//! With `normalize`, texts that differ only in case, punctuation or
//! whitespace hash alike: the text is lowercased, punctuation and symbols are
//! dropped and every whitespace run becomes one space (datatrove's
//! `simplify_text` does the same folding for its exact dedup).

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Fold case, punctuation and whitespace, streaming into the hasher so that
/// no normalized copy of the text is allocated.
fn normalized_hash(text: &str) -> u128 {
    let mut h = Xxh3::new();
    let mut buf = [0u8; 4];
    let mut pending_space = false;
    let mut started = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = started;
            continue;
        }
        if !c.is_alphanumeric() {
            continue;
        }
        if pending_space {
            h.update(b" ");
            pending_space = false;
        }
        started = true;
        if c.is_ascii() {
            h.update(&[c.to_ascii_lowercase() as u8]);
        } else {
            for l in c.to_lowercase() {
                h.update(l.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    h.digest128()
}

/// The 128-bit content hash of one text.
pub fn content_hash(text: &str, normalize: bool) -> u128 {
    if normalize {
        normalized_hash(text)
    } else {
        xxh3_128(text.as_bytes())
    }
}

/// Hashes of a batch, in order, spread over the current rayon pool.
pub fn content_hashes<S: AsRef<str> + Sync>(texts: &[S], normalize: bool) -> Vec<u128> {
    texts
        .par_iter()
        .map(|t| content_hash(t.as_ref(), normalize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_hash_is_xxh3() {
        assert_eq!(content_hash("abc", false), xxh3_128(b"abc"));
        assert_ne!(content_hash("abc", false), content_hash("abd", false));
    }

    #[test]
    fn normalization_folds_case_punctuation_whitespace() {
        let a = content_hash("Hello,   World!\n", true);
        assert_eq!(a, content_hash("hello world", true));
        assert_eq!(a, content_hash("  HELLO\tworld...", true));
        assert_ne!(a, content_hash("hello worlds", true));
        assert_ne!(a, content_hash("helloworld", true));
        assert_eq!(content_hash("Äpfel", true), content_hash("äpfel", true));
    }

    #[test]
    fn batch_matches_single() {
        let texts = vec!["a", "b", "a", ""];
        let hs = content_hashes(&texts, false);
        assert_eq!(hs[0], hs[2]);
        assert_eq!(hs[1], content_hash("b", false));
        assert_eq!(hs.len(), 4);
    }
}
