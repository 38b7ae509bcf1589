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

/// Normalize `text` into `out` (cleared first): lowercased words joined by
/// single spaces. `starts` receives the byte offset of each word in `out`
/// (the word ends where the next one starts minus the space, or at the end).
/// Both buffers are reused across documents to avoid an allocation per text.
pub fn words_into(text: &str, out: &mut String, starts: &mut Vec<u32>) {
    out.clear();
    starts.clear();
    out.reserve(text.len());
    // `in_word`: the last pushed character belongs to a word that may go on.
    let mut in_word = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            // ASCII fast path: no decoding, no category lookup.
            i += 1;
            if b.is_ascii_alphanumeric() {
                if !in_word {
                    start_word(out, starts);
                    in_word = true;
                }
                out.push(b.to_ascii_lowercase() as char);
            } else {
                in_word = false;
            }
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        i += c.len_utf8();
        if !is_word_char(c) {
            in_word = false;
            continue;
        }
        let solo = is_unspaced(c);
        if !in_word || solo {
            start_word(out, starts);
        }
        for l in c.to_lowercase() {
            out.push(l);
        }
        in_word = !solo;
    }
}

#[inline]
fn start_word(out: &mut String, starts: &mut Vec<u32>) {
    if !out.is_empty() {
        out.push(' ');
    }
    starts.push(out.len() as u32);
}

/// The normalized text (words joined by single spaces).
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut starts = Vec::new();
    words_into(text, &mut out, &mut starts);
    out
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
        let mut out = String::new();
        let mut starts = Vec::new();
        words_into("A bc, DEF", &mut out, &mut starts);
        assert_eq!(out, "a bc def");
        assert_eq!(starts, vec![0, 2, 5]);
    }
}
