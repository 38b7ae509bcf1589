//! English word tokenization as datatrove does it: spaCy's blank "en"
//! tokenizer (whitespace split, then prefix/suffix/infix rules and the
//! tokenizer exceptions), tokens stripped and empty ones dropped; and the
//! sentence count of spaCy's `sentencizer` over those tokens.
//!
//! The affix rules follow spaCy's `lang/punctuation.py` and
//! `lang/en/punctuation.py`; the exceptions (`en_exceptions.txt`, spaCy 3.8,
//! MIT) are spaCy's table verbatim. Differences from spaCy: URLs are kept
//! whole by a simple test instead of spaCy's URL regex, the unit list is
//! abridged, and special cases that span an affix split (spaCy's
//! `_special_matcher`, e.g. emoticons glued to words) are not re-merged.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use unicode_general_category::{get_general_category, GeneralCategory as G};

use super::charclass;
use super::text::is_space;

type Exceptions = FxHashMap<&'static str, Vec<&'static str>>;

fn exceptions() -> &'static Exceptions {
    static EX: OnceLock<Exceptions> = OnceLock::new();
    EX.get_or_init(|| {
        include_str!("en_exceptions.txt")
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k, v.split(' ').collect()))
            .collect()
    })
}

/// spaCy LIST_PUNCT + LIST_QUOTES (+ the dashes), the characters split off
/// either end of a token.
fn is_affix_punct(c: char) -> bool {
    matches!(
        c,
        '…' | ','
            | ':'
            | ';'
            | '!'
            | '?'
            | '¿'
            | '؟'
            | '¡'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '_'
            | '#'
            | '*'
            | '&'
            | '。'
            | '？'
            | '！'
            | '，'
            | '、'
            | '；'
            | '：'
            | '～'
            | '·'
            | '।'
            | '،'
            | '۔'
            | '؛'
            | '٪'
            | '\''
            | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | '„'
            | '»'
            | '«'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '〔'
            | '〕'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '⟦'
            | '⟧'
    )
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\'' | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | ','
            | '„'
            | '»'
            | '«'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '〔'
            | '〕'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '⟦'
            | '⟧'
    )
}

fn is_currency(c: char) -> bool {
    matches!(
        c,
        '$' | '£' | '€' | '¥' | '฿' | '﷼' | '\u{20a0}'..='\u{20bf}'
    )
}

fn is_icon(c: char) -> bool {
    !c.is_ascii() && get_general_category(c) == G::OtherSymbol
}

fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    charclass::contains(charclass::ALPHA, c)
}

fn is_lower(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_lowercase();
    }
    charclass::contains(charclass::ALPHA_LOWER, c)
}

fn is_upper(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_uppercase();
    }
    charclass::contains(charclass::ALPHA_UPPER, c)
}

const UNITS: &[&str] = &[
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²",
    "mm³", "ha", "µm", "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s",
    "km/h", "kmh", "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T",
    "G", "M", "K", "%",
];

fn first(s: &str) -> Option<char> {
    s.chars().next()
}

fn last(s: &str) -> Option<char> {
    s.chars().next_back()
}

/// Byte length of the prefix spaCy would split off `s` (0 for none).
fn find_prefix(s: &str) -> usize {
    let Some(c) = first(s) else { return 0 };
    if s.starts_with("..") {
        return s.len() - s.trim_start_matches('.').len();
    }
    if s.starts_with("US$") {
        return 3;
    }
    if (s.starts_with("C$") || s.starts_with("A$")) && s.len() > 2 {
        return 2;
    }
    if c == '+' {
        return if s[1..].starts_with(|d: char| d.is_ascii_digit()) {
            0
        } else {
            1
        };
    }
    if matches!(c, '§' | '%' | '=' | '—' | '–') || is_affix_punct(c) || is_currency(c) || is_icon(c)
    {
        return c.len_utf8();
    }
    0
}

/// Byte length of the suffix spaCy would split off `s` (0 for none). Of
/// the rules that match at the end, the one starting leftmost wins (spaCy
/// uses `re.search` over an alternation anchored at `$`).
fn find_suffix(s: &str) -> usize {
    let Some(c) = last(s) else { return 0 };
    let body = &s[..s.len() - c.len_utf8()];
    // `\.\.+$`
    if s.ends_with("..") {
        return s.len() - s.trim_end_matches('.').len();
    }
    // units / `%` / currency / `+` after a digit
    let has_digit = s.bytes().any(|b| b.is_ascii_digit());
    for u in UNITS.iter().filter(|_| has_digit) {
        if s.len() > u.len() && s.ends_with(u) {
            let before = &s[..s.len() - u.len()];
            if last(before).is_some_and(|d| d.is_ascii_digit()) {
                return u.len();
            }
        }
    }
    if (is_currency(c) || c == '+') && last(body).is_some_and(|d| d.is_ascii_digit()) {
        return c.len_utf8();
    }
    // `'s` and its variants
    for suf in ["'s", "'S", "’s", "’S"] {
        if s.ends_with(suf) {
            return suf.len();
        }
    }
    if is_affix_punct(c) || matches!(c, '—' | '–') || is_icon(c) {
        return c.len_utf8();
    }
    if c == '.' {
        let p = last(body);
        let split = match p {
            Some(p) => {
                p.is_ascii_digit()
                    || is_lower(p)
                    || matches!(p, '+' | '-' | '*' | '^' | '%')
                    || is_affix_punct(p)
                    || is_quote(p)
                    || (is_upper(p)
                        && last(&body[..body.len() - p.len_utf8()]).is_some_and(is_upper))
                    || (matches!(p, 'F' | 'f' | 'C' | 'c' | 'K' | 'k') && {
                        let b2 = &body[..body.len() - 1];
                        b2.ends_with('°')
                    })
            }
            None => false,
        };
        if split {
            return 1;
        }
    }
    0
}

/// spaCy's `token_match`/`url_match`, simplified: things that look like URLs.
fn is_url(s: &str) -> bool {
    let l = s.len();
    l > 4 && (s.contains("://") || s.starts_with("www.")) && !s.ends_with('.')
}

fn may_start_infix(c: char) -> bool {
    matches!(
        c,
        '.' | '…' | '+' | '-' | '*' | '^' | ',' | '–' | '—' | '~' | ':' | '<' | '>' | '=' | '/'
    ) || is_icon(c)
}

/// Pushes the infix-split pieces of `s` onto `out`.
fn split_infixes<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    // most pieces have no infix character: skip the char table
    if !s.chars().any(may_start_infix) {
        out.push(s);
        return;
    }
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let n = cs.len();
    let at = |k: usize| if k < n { Some(cs[k].1) } else { None };
    let byte = |k: usize| if k < n { cs[k].0 } else { s.len() };
    let mut start = 0; // char index where the current piece starts
    let mut k = 0;
    while k < n {
        let c = cs[k].1;
        let prev = if k > 0 { at(k - 1) } else { None };
        let next = at(k + 1);
        let alnum_before = prev.is_some_and(|p| is_alpha(p) || p.is_ascii_digit());
        // the one-character infixes of spaCy's list
        let single = c == '…'
            || is_icon(c)
            || (matches!(c, '+' | '-' | '*' | '^')
                && prev.is_some_and(|p| p.is_ascii_digit())
                && next.is_some_and(|x| x.is_ascii_digit() || x == '-'))
            || (c == '.'
                && prev.is_some_and(|p| is_lower(p) || is_quote(p))
                && next.is_some_and(|x| is_upper(x) || is_quote(x)))
            || (c == ',' && prev.is_some_and(is_alpha) && next.is_some_and(is_alpha))
            || (matches!(c, ':' | '<' | '>' | '=' | '/')
                && alnum_before
                && next.is_some_and(is_alpha));
        let mut m = 0; // length in chars of an infix match at k
        if c == '.' && next == Some('.') {
            m = cs[k..].iter().take_while(|x| x.1 == '.').count();
        } else if single {
            m = 1;
        } else if matches!(c, '-' | '–' | '—' | '~') && alnum_before {
            // `-|–|—|--|---|——|~` followed by a letter, first alternative that fits
            let avail = cs[k..].iter().take(3).take_while(|x| x.1 == c).count();
            let cands: &[usize] = match c {
                '-' => &[1, 2, 3],
                '—' => &[1, 2],
                _ => &[1],
            };
            for &len in cands {
                if len <= avail && at(k + len).is_some_and(is_alpha) {
                    m = len;
                    break;
                }
            }
        }
        if m > 0 {
            if k > start {
                out.push(&s[byte(start)..byte(k)]);
            }
            out.push(&s[byte(k)..byte(k + m)]);
            k += m;
            start = k;
        } else {
            k += 1;
        }
    }
    if start < n {
        out.push(&s[byte(start)..]);
    }
}

/// Tokens of one whitespace-free span, in order.
fn tokenize_span<'a>(span: &'a str, out: &mut Vec<&'a str>) {
    let ex = exceptions();
    if let Some(toks) = ex.get(span) {
        out.extend(toks.iter().copied());
        return;
    }
    // Fast paths for most spans, giving what the general loop below would:
    // a bare word or number, or a word with one trailing , ; : ! ?
    let b = span.as_bytes();
    if b.iter().all(u8::is_ascii_alphabetic) || b.iter().all(u8::is_ascii_digit) {
        out.push(span);
        return;
    }
    if let [body @ .., b',' | b';' | b':' | b'!' | b'?'] = b {
        if !body.is_empty() && body.iter().all(u8::is_ascii_alphabetic) {
            let body = &span[..body.len()];
            match ex.get(body) {
                Some(toks) => out.extend(toks.iter().copied()),
                None => out.push(body),
            }
            out.push(&span[body.len()..]);
            return;
        }
    }
    let mut s = span;
    let mut suffixes: Vec<&'a str> = Vec::new();
    let mut last_len = usize::MAX;
    while !s.is_empty() && s.len() != last_len {
        if is_url(s) || ex.contains_key(s) {
            break;
        }
        last_len = s.len();
        let pre = find_prefix(s);
        if pre > 0 && pre < s.len() && ex.contains_key(&s[pre..]) {
            out.push(&s[..pre]);
            s = &s[pre..];
            break;
        }
        let suf = find_suffix(&s[pre..]);
        if suf > 0 && suf < s.len() && ex.contains_key(&s[..s.len() - suf]) {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
            break;
        }
        if pre > 0 && suf > 0 && pre + suf <= s.len() {
            out.push(&s[..pre]);
            suffixes.push(&s[s.len() - suf..]);
            s = &s[pre..s.len() - suf];
        } else if pre > 0 {
            out.push(&s[..pre]);
            s = &s[pre..];
        } else if suf > 0 {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
        }
        if !s.is_empty() && ex.contains_key(s) {
            break;
        }
    }
    if !s.is_empty() {
        if let Some(toks) = ex.get(s) {
            out.extend(toks.iter().copied());
        } else if is_url(s) {
            out.push(s);
        } else {
            split_infixes(s, out);
        }
    }
    out.extend(suffixes.iter().rev());
}

/// Every token of `text` with whether it is whitespace. Like spaCy, text
/// is cut into runs of space and non-space; one ' ' right after a word is
/// that word's trailing space, the rest of a space run is a token (it
/// matters to the sentencizer, never to the word list).
fn for_each_token<'a>(text: &'a str, mut f: impl FnMut(&'a str, bool)) {
    let mut buf: Vec<&'a str> = Vec::new();
    let mut word_start: Option<usize> = None;
    let mut ws_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_space(c) {
            if let Some(st) = word_start.take() {
                buf.clear();
                tokenize_span(&text[st..i], &mut buf);
                for t in &buf {
                    f(t, false);
                }
                ws_start = Some(if c == ' ' { i + 1 } else { i });
            } else if ws_start.is_none() {
                ws_start = Some(i);
            }
        } else if word_start.is_none() {
            if let Some(ws) = ws_start.take() {
                if ws < i {
                    f(&text[ws..i], true);
                }
            }
            word_start = Some(i);
        }
    }
    if let Some(st) = word_start {
        buf.clear();
        tokenize_span(&text[st..], &mut buf);
        for t in &buf {
            f(t, false);
        }
    } else if let Some(ws) = ws_start {
        if ws < text.len() {
            f(&text[ws..], true);
        }
    }
}

/// datatrove's `split_into_words(text, "en")`: spaCy tokens, stripped,
/// empty ones dropped.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for_each_token(text, |t, ws| {
        if !ws {
            let t = super::text::strip(t);
            if !t.is_empty() {
                out.push(t);
            }
        }
    });
    out
}

const SENT_PUNCT: &[char] = &[
    '!', '.', '?', '։', '؟', '۔', '܀', '܁', '܂', '߹', '।', '॥', '၊', '။', '።', '፧', '፨', '᙮', '᜵',
    '᜶', '᠃', '᠉', '᥄', '᥅', '᪨', '᪩', '᪪', '᪫', '᭚', '᭛', '᭞', '᭟', '᰻', '᰼', '᱾', '᱿', '‼', '‽',
    '⁇', '⁈', '⁉', '⸮', '⸼', '꓿', '꘎', '꘏', '꛳', '꛷', '꡶', '꡷', '꣎', '꣏', '꤯', '꧈', '꧉', '꩝', '꩞',
    '꩟', '꫰', '꫱', '꯫', '﹒', '﹖', '﹗', '！', '．', '？', '𐩖', '𐩗', '𑁇', '𑁈', '𑂾', '𑂿', '𑃀', '𑃁',
    '𑅁', '𑅂', '𑅃', '𑇅', '𑇆', '𑇍', '𑇞', '𑇟', '𑈸', '𑈹', '𑈻', '𑈼', '𑊩', '𑑋', '𑑌', '𑗂', '𑗃', '𑗉', '𑗊',
    '𑗋', '𑗌', '𑗍', '𑗎', '𑗏', '𑗐', '𑗑', '𑗒', '𑗓', '𑗔', '𑗕', '𑗖', '𑗗', '𑙁', '𑙂', '𑜼', '𑜽', '𑜾', '𑩂',
    '𑩃', '𑪛', '𑪜', '𑱁', '𑱂', '𖩮', '𖩯', '𖫵', '𖬷', '𖬸', '𖭄', '𛲟', '𝪈', '｡', '。',
];

fn is_punct_token(t: &str) -> bool {
    !t.is_empty()
        && t.chars().all(|c| {
            matches!(
                get_general_category(c),
                G::ConnectorPunctuation
                    | G::DashPunctuation
                    | G::OpenPunctuation
                    | G::ClosePunctuation
                    | G::InitialPunctuation
                    | G::FinalPunctuation
                    | G::OtherPunctuation
            )
        })
}

/// The number of sentences spaCy's `sentencizer` finds in `text`
/// (`len(split_into_sentences(text, "en"))`; at least 1).
pub fn count_sentences(text: &str) -> usize {
    let mut count = 1;
    let mut seen_period = false;
    let mut any = false;
    for_each_token(text, |t, _| {
        let single = {
            let mut it = t.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => SENT_PUNCT.contains(&c),
                _ => false,
            }
        };
        if seen_period && any && !single && !is_punct_token(t) {
            count += 1;
            seen_period = false;
        } else if single {
            seen_period = true;
        }
        any = true;
    });
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_rules() {
        assert_eq!(
            words("Don't stop, Mr. Smith!"),
            ["Do", "n't", "stop", ",", "Mr.", "Smith", "!"]
        );
        assert_eq!(
            words("(well-known) U.S. 10km..."),
            ["(", "well", "-", "known", ")", "U.S.", "10", "km", "..."]
        );
        assert_eq!(
            words("it's 50% off at https://x.org/a."),
            ["it", "'s", "50", "%", "off", "at", "https://x.org/a", "."]
        );
        assert_eq!(words("  a\n\nb "), ["a", "b"]);
        assert_eq!(words("word--word"), ["word", "--", "word"]);
    }

    #[test]
    fn sentences() {
        assert_eq!(count_sentences("One. Two! Three?"), 3);
        assert_eq!(count_sentences("Mr. Smith went home."), 1);
        assert_eq!(count_sentences("He said \"yes.\" Then left."), 2);
        assert_eq!(count_sentences(""), 1);
    }
}
