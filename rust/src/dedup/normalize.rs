//! Unicode-aware text normalization for near-duplicate detection.
//!
//! The rule, one character at a time (so that a pure-Python reference is one
//! line per case, see `tests/dedup/reference.py`):
//!
//! - A *word character* is one whose Unicode general category is a letter
//!   (L*), a mark (M*) or a number (N*). It is lowercased (the full
//!   per-character mapping, `char::to_lowercase`, as Python's `str.lower` on
//!   one character).
//! - Every other character (punctuation, symbols, whitespace, controls) is a
//!   word boundary: punctuation and whitespace fold into one space, as
//!   text-dedup's `NON_ALPHA.split` and datatrove's `simplify_text` do.
//! - A character of a script written without spaces (Han, Hiragana,
//!   Katakana, Thai, Lao, Khmer, Myanmar; see [`is_unspaced`]) is a word on
//!   its own, so word n-grams over such text are character n-grams, and mixed
//!   text works without a language switch.
//!
//! The result is the words joined by single spaces; shingles are byte ranges
//! of it (see `shingle.rs`), so no per-shingle string is allocated.

use unicode_general_category::{get_general_category, GeneralCategory as G};

use super::chars::{decode, push_utf8, single_lower, BmpTable};

/// Scripts written without spaces between words: each of their characters is
/// a word of its own.
pub fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF       // Thai, Lao
        | 0x1000..=0x109F     // Myanmar
        | 0x1780..=0x17FF     // Khmer
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // halfwidth Katakana
        | 0x20000..=0x3FFFF // CJK extensions B..
    )
}

/// Letters, marks and numbers; everything else separates words.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::SpacingMark
            | G::EnclosingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
    )
}

const BOUNDARY: u8 = 0;
const WORD: u8 = 1;
const SOLO: u8 = 2; // a word character of an unspaced script: a word alone

/// The class of `c` (by the rule above) and its single-character lowercase.
fn classify_slow(c: char) -> (u8, Option<char>) {
    let class = if !is_word_char(c) {
        BOUNDARY
    } else if is_unspaced(c) {
        SOLO
    } else {
        WORD
    };
    (class, single_lower(c))
}

fn table() -> &'static BmpTable {
    static TABLE: std::sync::OnceLock<BmpTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| BmpTable::build(classify_slow))
}

/// ASCII bytes: the lowercase of a letter or digit, 0 for a boundary.
const fn ascii_words() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
}

static ASCII_WORD: [u8; 128] = ascii_words();

/// Normalize `text` into `out` (cleared first): lowercased words joined by
/// single spaces, valid UTF-8. `starts` receives the byte offset of each
/// word in `out` (the word ends where the next one starts minus the space,
/// or at the end). Both buffers are reused across documents to avoid an
/// allocation per text.
///
/// Bytes, not chars: ASCII runs take branch-free steps; other characters of the BMP are decoded by hand and take one lookup in
/// [`BmpTable`] for class and lowercase (the standard library's category
/// and case searches run only for characters outside the BMP and for the
/// few whose lowercase is more than one character).
pub fn words_into(text: &str, out: &mut Vec<u8>, starts: &mut Vec<u32>) {
    out.clear();
    starts.clear();
    // A space per word at most doubles one-byte words; lowercase expansions
    // (2 -> 3 bytes) stay within that.
    out.reserve(2 * text.len());
    // 1 when the last pushed character belongs to a word that may go on.
    let mut in_word = 0usize;
    let bytes = text.as_bytes();
    let tab = table();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if bytes.get(i + 1).is_some_and(|&c| c < 0x80) {
                i = ascii_run(bytes, i, out, starts, &mut in_word);
                continue;
            }
            // One ASCII byte between non-ASCII ones (the space between two
            // Cyrillic words): not worth growing the buffers for a run.
            i += 1;
            let lower = ASCII_WORD[b as usize];
            if lower == 0 {
                in_word = 0;
                continue;
            }
            if in_word == 0 {
                start_word(out, starts);
                in_word = 1;
            }
            out.push(lower);
            continue;
        }
        let (cp, len) = decode(bytes, i);
        if len == 2 {
            // Latin, Greek, Cyrillic, Hebrew, Arabic letters: a word
            // character with a two-byte lowercase is the common case.
            let (class, lower) = tab.get(cp);
            if class == WORD && (0x80..0x800).contains(&lower) {
                if in_word == 0 {
                    start_word(out, starts);
                    in_word = 1;
                }
                out.extend_from_slice(&[0xC0 | (lower >> 6) as u8, 0x80 | (lower & 0x3F) as u8]);
                i += 2;
                continue;
            }
        }
        if len == 3 && tab.page_class(cp) == SOLO {
            // An ideograph or kana of a page of them: a word of its own,
            // copied as it is, no lookup in the large table.
            start_word(out, starts);
            out.extend_from_slice(&bytes[i..i + 3]);
            in_word = 0;
            i += 3;
            continue;
        }
        let (class, lower) = tab.lookup(cp, classify_slow);
        if class == BOUNDARY {
            in_word = 0;
            i += len;
            continue;
        }
        let solo = class == SOLO;
        if in_word == 0 || solo {
            start_word(out, starts);
        }
        if lower != 0 {
            push_utf8(out, lower);
        } else {
            let c = text[i..].chars().next().unwrap();
            for l in c.to_lowercase() {
                push_utf8(out, l as u32);
            }
        }
        i += len;
        in_word = (!solo) as usize;
    }
}

/// The ASCII bytes from `i` on (up to the next non-ASCII byte), without a
/// branch per byte: in prose the class changes every few bytes, and a
/// branch per change mispredicts about that often. The run's end is found
/// first, eight bytes at a time; both buffers then get room for the run (an
/// ASCII byte adds at most one byte and one word start) and are written in
/// their spare capacity, with no zero-filling. Returns where the run ends.
#[inline]
fn ascii_run(
    bytes: &[u8],
    i: usize,
    out: &mut Vec<u8>,
    starts: &mut Vec<u32>,
    in_word: &mut usize,
) -> usize {
    let mut end = i;
    while let Some(block) = bytes.get(end..end + 8) {
        if u64::from_le_bytes(block.try_into().unwrap()) & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        end += 8;
    }
    while end < bytes.len() && bytes[end] < 0x80 {
        end += 1;
    }
    let run = &bytes[i..end];
    let (base, nw0) = (out.len(), starts.len());
    out.reserve(run.len() + 1);
    starts.reserve(run.len());
    let o = &mut out.spare_capacity_mut()[..run.len() + 1];
    let st = &mut starts.spare_capacity_mut()[..run.len()];
    let (mut len, mut nw) = (0usize, 0usize);
    let mut w_prev = *in_word;
    let nonempty = (base != 0) as usize;
    for &b in run {
        let lower = ASCII_WORD[b as usize & 0x7F];
        let w = (lower != 0) as usize;
        let start = w & (w_prev ^ 1);
        // A space before a word that is not the first of the text.
        o[len].write(b' ');
        len += start & (nonempty | (len != 0) as usize);
        st[nw].write((base + len) as u32);
        nw += start;
        o[len].write(lower);
        len += w;
        w_prev = w;
    }
    // SAFETY: `len` only moves past an index after writing it, so the first
    // `len` spare bytes (and, likewise, `nw` spare starts) are initialized.
    unsafe {
        out.set_len(base + len);
        starts.set_len(nw0 + nw);
    }
    *in_word = w_prev;
    end
}

#[inline]
fn start_word(out: &mut Vec<u8>, starts: &mut Vec<u32>) {
    if !out.is_empty() {
        out.push(b' ');
    }
    starts.push(out.len() as u32);
}

/// The normalized text (words joined by single spaces).
pub fn normalize(text: &str) -> String {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    words_into(text, &mut out, &mut starts);
    String::from_utf8(out).expect("words_into writes UTF-8")
}

/// The normalized words of `text`.
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_punctuation_and_whitespace() {
        assert_eq!(normalize("Hello,   World!\n"), "hello world");
        assert_eq!(normalize("  end.Start  "), "end start");
        assert_eq!(normalize("don't"), "don t");
        assert_eq!(normalize("Äpfel ÜBER naïve"), "äpfel über naïve");
        assert_eq!(normalize("..."), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn marks_stay_inside_words() {
        // Devanagari vowel signs are marks (Mc/Mn), not separators.
        assert_eq!(words("नमस्ते दुनिया"), vec!["नमस्ते", "दुनिया"]);
    }

    #[test]
    fn unspaced_scripts_are_one_word_per_character() {
        assert_eq!(words("我爱北京"), vec!["我", "爱", "北", "京"]);
        assert_eq!(words("GPU是好的"), vec!["gpu", "是", "好", "的"]);
        assert_eq!(words("カタカナ abc"), vec!["カ", "タ", "カ", "ナ", "abc"]);
    }

    #[test]
    fn word_starts_point_into_the_output() {
        let mut out = Vec::new();
        let mut starts = Vec::new();
        words_into("A bc, DEF", &mut out, &mut starts);
        assert_eq!(out, b"a bc def");
        assert_eq!(starts, vec![0, 2, 5]);
    }

    #[test]
    fn table_equals_the_rule_for_every_code_point() {
        let t = table();
        for cp in 0..0x1_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let (class, lower) = classify_slow(c);
            assert_eq!(
                t.get(cp),
                (class, lower.map_or(0, |l| l as u32)),
                "U+{cp:04X}"
            );
        }
    }

    #[test]
    fn multi_character_lowercase_and_astral_planes() {
        assert_eq!(normalize("İSTANBUL"), "i\u{307}stanbul");
        // Deseret (outside the BMP) has case; U+20000 is an unspaced ideograph.
        assert_eq!(
            normalize("\u{10400}x \u{20000}\u{20001}"),
            "\u{10428}x \u{20000} \u{20001}"
        );
    }

    /// The rule one character at a time, with the standard library.
    fn naive_words(text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut open = false;
        for c in text.chars() {
            if !is_word_char(c) {
                open = false;
            } else if is_unspaced(c) {
                out.push(c.to_lowercase().collect());
                open = false;
            } else if open {
                out.last_mut().unwrap().extend(c.to_lowercase());
            } else {
                out.push(c.to_lowercase().collect());
                open = true;
            }
        }
        out
    }

    #[test]
    fn fast_paths_equal_the_char_by_char_rule() {
        // Long ASCII runs (past the 4 KB run size), single ASCII bytes
        // between non-ASCII characters, every table class.
        let alphabet: Vec<char> = "aZ9  \t.,'-_ÄéßİǅΣσςЖжЁ中文カナ한글ไทย\u{300}\u{2014}\u{201C}\u{3000}\u{10400}\u{20000}😀"
            .chars()
            .collect();
        let mut rng = crate::dedup::minhash::SplitMix64(2);
        for len in [0, 1, 2, 3, 50, 5000, 20_000] {
            for ascii_share in [0, 50, 95, 100] {
                let text: String = (0..len)
                    .map(|_| {
                        let r = rng.next_u64();
                        if r % 100 < ascii_share {
                            b"abcXYZ09 ,."[(r >> 8) as usize % 11] as char
                        } else {
                            alphabet[(r >> 8) as usize % alphabet.len()]
                        }
                    })
                    .collect();
                assert_eq!(words(&text), naive_words(&text), "{text:?}");
            }
        }
    }
}
