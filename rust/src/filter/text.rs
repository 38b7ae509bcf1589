//! Python's string semantics where datatrove's filters depend on them
//! (`str.isspace`, `str.strip`, `str.splitlines`, `str.isalpha`, `len`),
//! and datatrove's punctuation sets (`datatrove/utils/text.py`).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// `str.isspace` for one character: Rust's White_Space plus the four
/// information separators (U+001C..U+001F) that Python also counts.
#[inline]
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
#[inline]
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.isalpha` for one character: general category L*.
#[inline]
pub fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

/// `len(s)` in code points.
#[inline]
pub fn py_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `str.splitlines()` (without keepends): lines split at every line
/// boundary Python knows, `\r\n` counting as one; no trailing empty line.
pub fn splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_line_break(c) {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(_, '\n')) = it.peek() {
                    it.next();
                    end += 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// datatrove's `PUNCTUATION` string (ASCII/CJK punctuation plus the C0/C1
/// control characters other than `\t` and `\n`).
const PUNCTUATION: &str =
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»";

/// datatrove's `TERMINAL_PUNCTUATION` (sentence-final marks of many scripts).
pub const TERMINAL_PUNCTUATION: &[char] = &[
    '᪩',
    '？',
    '⁈',
    '𑩂',
    '．',
    '꩞',
    '𑅃',
    '﹗',
    '𑂾',
    '\u{1b7d}',
    '፧',
    '𑅂',
    '꡶',
    '꘎',
    '⁉',
    '࠾',
    '᪨',
    '𑊩',
    '𑱂',
    '᱿',
    '𖩮',
    '᥅',
    '\u{11f43}',
    '\u{11f44}',
    '﹒',
    '𑈹',
    '𑈸',
    '።',
    '܂',
    '؞',
    '꛳',
    '\u{10f88}',
    '𑗍',
    '𐩖',
    '𑙂',
    '\u{061d}',
    '꩟',
    '᠉',
    '\u{1b7e}',
    '𑗗',
    '᰼',
    '𑻸',
    '؟',
    '𑪜',
    '꧉',
    '𑗉',
    '𐽙',
    '𖫵',
    '𖬷',
    '܀',
    '꓿',
    '᜵',
    '𑗏',
    '𑁇',
    '𑗓',
    '𑥄',
    '៖',
    '𑥆',
    '𑗑',
    '𑗒',
    '꯫',
    '۔',
    '𐩗',
    '\u{10f86}',
    '꡷',
    '\u{2e54}',
    '｡',
    '៕',
    '߹',
    '⸮',
    '.',
    '𑇅',
    '࠹',
    '𛲟',
    '꫰',
    '꤯',
    '𐽗',
    '᭞',
    '𑜼',
    '፨',
    '𑃁',
    '꣏',
    '𑇟',
    '𖬸',
    '𑪛',
    '𑜾',
    '࠷',
    '𝪈',
    '?',
    '𑃀',
    '𑗃',
    '！',
    '։',
    '꣎',
    '॥',
    '𑗖',
    '᭛',
    '᠃',
    '!',
    '၊',
    '𖺘',
    '⁇',
    '𑗌',
    '𑑋',
    '𖭄',
    '᭟',
    '𑅁',
    '𑙁',
    '⸼',
    '꩝',
    '𑗋',
    '。',
    '꧈',
    '꫱',
    '𑜽',
    '𐽖',
    '𑂿',
    '᙮',
    '។',
    '꛷',
    '\u{10f89}',
    '៚',
    '᥄',
    '𑗕',
    '𑗎',
    '᪪',
    '᭚',
    '࠽',
    '𑇞',
    '𑗊',
    '𐽘',
    '\u{2e53}',
    '𑗔',
    '𖩯',
    '𑇍',
    '𑻷',
    '𐽕',
    '𑩃',
    '।',
    '𑗂',
    '𑇆',
    '𑁈',
    '။',
    '᱾',
    '𑱁',
    '꘏',
    '܁',
    '᜶',
    '‼',
    '𑈻',
    '‽',
    '᪫',
    '﹖',
    '𑑌',
    '𑈼',
    '\u{10f87}',
    '𑗐',
    '៙',
    '᰻',
];

/// Membership in datatrove's `PUNCTUATION_SET` (PUNCTUATION ∪ TERMINAL_PUNCTUATION).
#[inline]
pub fn is_punctuation(c: char) -> bool {
    let u = c as u32;
    if u < 9 || (11..13).contains(&u) || (13..32).contains(&u) || (127..160).contains(&u) {
        return true;
    }
    if c.is_ascii() {
        return PUNCTUATION.as_bytes().contains(&(c as u8));
    }
    PUNCTUATION.contains(c) || is_terminal(c)
}

/// Membership in `TERMINAL_PUNCTUATION`.
#[inline]
pub fn is_terminal(c: char) -> bool {
    match c {
        '.' | '?' | '!' => true,
        _ if c.is_ascii() => false,
        _ => TERMINAL_PUNCTUATION.contains(&c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(splitlines("a\r\nb\rc\n\nd\n"), vec!["a", "b", "c", "", "d"]);
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("x\u{2028}y"), vec!["x", "y"]);
    }

    #[test]
    fn classes() {
        assert!(is_punctuation('#') && is_punctuation('\u{7f}') && is_punctuation('。'));
        assert!(!is_punctuation('a') && !is_punctuation('\t'));
        assert!(is_terminal('。') && !is_terminal(','));
        assert!(is_alpha('é') && !is_alpha('1') && !is_alpha('\u{0301}'));
        assert_eq!(strip("\u{1f} a \n"), "a");
        assert_eq!(py_len("héllo"), 5);
    }
}
