//! Exact duplicates by a 128-bit content hash (xxh3).
//!
//! With `normalize`, texts that differ only in case, punctuation or
//! whitespace hash alike: the text is lowercased, punctuation and symbols are
//! dropped and every whitespace run becomes one space (datatrove's
//! `simplify_text` does the same folding for its exact dedup).

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// ASCII byte classes: 1 = letter or digit, 2 = whitespace (as
/// `char::is_whitespace`), 0 = dropped (punctuation, symbols, controls).
const fn ascii_classes() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            1
        } else if matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            2
        } else {
            0
        };
        b += 1;
    }
    t
}

static ASCII_CLASS: [u8; 128] = ascii_classes();

const DROP: u8 = 0;
const KEEP: u8 = 1;
const WS: u8 = 2;

/// Class and one-character lowercase of every character below U+0800
/// (Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, ...), built once: the
/// standard library answers these by binary search in its Unicode tables,
/// which cost more than the hashing itself on non-English text.
struct TwoByteTable {
    class: [u8; 0x800],
    /// The lowercase when it is one character, else '\0' (use the slow path).
    lower: [char; 0x800],
}

fn two_byte_table() -> &'static TwoByteTable {
    static TABLE: std::sync::OnceLock<Box<TwoByteTable>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new(TwoByteTable {
            class: [DROP; 0x800],
            lower: ['\0'; 0x800],
        });
        for cp in 0..0x800u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let (class, lower) = classify_slow(c);
            t.class[cp as usize] = class;
            t.lower[cp as usize] = lower.unwrap_or('\0');
        }
        t
    })
}

/// The class of `c` and its lowercase when that is one character (None:
/// ask `char::to_lowercase`).
fn classify_slow(c: char) -> (u8, Option<char>) {
    if c.is_whitespace() {
        return (WS, None);
    }
    if !c.is_alphanumeric() {
        return (DROP, None);
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => (KEEP, Some(x)),
        _ => (KEEP, None),
    }
}

#[inline]
fn classify(c: char) -> (u8, Option<char>) {
    let cp = c as u32;
    if cp < 0x800 {
        let t = two_byte_table();
        let lower = t.lower[cp as usize];
        return (t.class[cp as usize], (lower != '\0').then_some(lower));
    }
    // Caseless letters of the big unspaced scripts: no table lookups.
    if matches!(cp, 0x3041..=0x3096 | 0x30A1..=0x30FA | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3) {
        return (KEEP, Some(c));
    }
    classify_slow(c)
}

/// Fold case, punctuation and whitespace, streaming into the hasher through
/// a stack buffer, so that no normalized copy of the text is allocated and
/// the hasher sees large updates. ASCII bytes take a branch-free step
/// (table lookups and conditional increments): in prose the class changes
/// every few bytes, and a branch per class change mispredicts that often.
fn normalized_hash(text: &str) -> u128 {
    // Room for a space and the longest lowercase expansion of one character.
    const SLACK: usize = 16;
    let mut h = Xxh3::new();
    let mut buf = [0u8; 4096];
    let mut len = 0;
    // 1 when a space is owed before the next kept character.
    let mut pending = 0usize;
    let mut started = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if len + SLACK > buf.len() {
            h.update(&buf[..len]);
            len = 0;
        }
        let b = bytes[i];
        if b < 0x80 {
            i += 1;
            let class = ASCII_CLASS[b as usize] as usize;
            let alnum = class & 1;
            let space = class >> 1;
            buf[len] = b' ';
            len += pending & alnum;
            buf[len] = b.to_ascii_lowercase();
            len += alnum;
            pending = (pending | (space & started)) & (alnum ^ 1);
            started |= alnum;
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        i += c.len_utf8();
        let (class, lower) = classify(c);
        if class == WS {
            pending = started;
            continue;
        }
        if class == DROP {
            continue;
        }
        if pending == 1 {
            buf[len] = b' ';
            len += 1;
            pending = 0;
        }
        started = 1;
        match lower {
            Some(l) => len += l.encode_utf8(&mut buf[len..]).len(),
            None => {
                for l in c.to_lowercase() {
                    len += l.encode_utf8(&mut buf[len..]).len();
                }
            }
        }
    }
    h.update(&buf[..len]);
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
    fn normalized_hash_is_xxh3_of_the_folded_text() {
        // Longer than the stack buffer, with multi-byte lowercase expansions.
        let text = "İ Straße, ÉTÉ!\t".repeat(2000);
        let folded = "i\u{307} straße été ".repeat(2000);
        assert_eq!(
            content_hash(&text, true),
            xxh3_128(folded.trim_end().as_bytes())
        );
        assert_eq!(content_hash("\u{b}a\u{1c}b", true), xxh3_128(b"ab"));
    }

    #[test]
    fn fast_classification_equals_the_standard_library() {
        for cp in 0..0x3_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            assert_eq!(classify(c), classify_slow(c), "U+{cp:04X}");
        }
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
