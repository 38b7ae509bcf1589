//! Pre-tokenization: split text into the pieces BPE merges within, using the
//! reference regexes (GPT-2, cl100k, o200k, or any user pattern) on PCRE2
//! with its JIT. PCRE2 handles the lookahead (`\s+(?!\S)`) and possessive
//! quantifiers (`\p{L}++`) these patterns use, in time linear in the input
//! for them.
//!
//! The reference implementations (tiktoken: fancy-regex; HF tokenizers:
//! Oniguruma) differ from PCRE2 in two details (`$`, and U+180E in `\s`);
//! `Pretokenizer::new` rewrites patterns so the engines agree (`translate`).

use pcre2::bytes::{Regex, RegexBuilder};

use crate::error::{Error, Result};

/// GPT-2 / r50k / p50k (tiktoken's faster, equivalent form).
pub const GPT2_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";

/// GPT-4 (cl100k_base), as tiktoken defines it.
pub const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// GPT-4o (o200k_base), as tiktoken defines it.
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// The pattern HF tokenizers' `ByteLevel(use_regex=True)` pre-tokenizer uses.
pub const HF_BYTELEVEL_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Unicode `White_Space`, which `\s` means in the reference engines. PCRE2's
/// `\s` also matches U+180E (MONGOLIAN VOWEL SEPARATOR, no longer a space
/// since Unicode 6.3), so patterns are given this set spelled out.
const WHITE_SPACE: &str =
    r"\t-\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}";

/// Rewrite a reference pattern so PCRE2 reads it as fancy-regex (tiktoken)
/// and Oniguruma (HF tokenizers) do:
/// - a bare `$` (outside a class, unescaped) becomes `\z`: end of text only,
///   where PCRE2's `$` also matches before a final newline;
/// - `\s` becomes the `White_Space` set, `\S` its complement (inside a class
///   `\s` contributes the set's members; `\S` inside a class is kept).
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 64);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str(WHITE_SPACE),
                Some('s') => {
                    out.push('[');
                    out.push_str(WHITE_SPACE);
                    out.push(']');
                }
                Some('S') if !in_class => {
                    out.push_str("[^");
                    out.push_str(WHITE_SPACE);
                    out.push(']');
                }
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal member.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                for _ in 0..skip {
                    out.push(chars.next().unwrap());
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class => out.push_str(r"\z"),
            _ => out.push(c),
        }
    }
    out
}

/// A compiled pre-tokenization pattern. Cheap to share across threads.
pub struct Pretokenizer {
    pattern: String,
    re: Regex,
}

impl Pretokenizer {
    pub fn new(pattern: &str) -> Result<Self> {
        let re = RegexBuilder::new()
            .utf(true)
            .ucp(true)
            .jit_if_available(true)
            .build(&translate(pattern))
            .map_err(|e| Error::invalid(format!("pattern {pattern:?} does not compile: {e}")))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            re,
        })
    }

    /// The pattern as given (before the `$` rewrite).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The pieces of `text`, in order. Text the pattern does not match (only
    /// possible with user patterns) is returned as pieces too, so nothing is
    /// lost: the pieces always concatenate back to `text`.
    pub fn split<'t>(&self, text: &'t str) -> Split<'_, 't> {
        Split {
            matches: self.re.find_iter(text.as_bytes()),
            text,
            pos: 0,
            pending: None,
        }
    }
}

pub struct Split<'r, 't> {
    matches: pcre2::bytes::Matches<'r, 't>,
    text: &'t str,
    pos: usize,
    pending: Option<(usize, usize)>,
}

impl<'t> Iterator for Split<'_, 't> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        if let Some((s, e)) = self.pending.take() {
            self.pos = e;
            return Some(&self.text[s..e]);
        }
        loop {
            match self.matches.next() {
                // A match error (JIT stack exhausted on a pathological user
                // pattern) ends matching; the rest of the text becomes one
                // piece below rather than being dropped.
                Some(Ok(m)) => {
                    let (s, e) = (m.start(), m.end());
                    if s == e {
                        continue;
                    }
                    if s > self.pos {
                        let gap = &self.text[self.pos..s];
                        self.pending = Some((s, e));
                        self.pos = s;
                        return Some(gap);
                    }
                    self.pos = e;
                    return Some(&self.text[s..e]);
                }
                Some(Err(_)) | None => {
                    if self.pos < self.text.len() {
                        let rest = &self.text[self.pos..];
                        self.pos = self.text.len();
                        return Some(rest);
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(p: &str, t: &str) -> Vec<String> {
        Pretokenizer::new(p)
            .unwrap()
            .split(t)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn dollar_becomes_end_of_text() {
        assert_eq!(translate(r"a++$|a"), r"a++\z|a");
        assert_eq!(translate(r"[$]\$"), r"[$]\$");
        assert_eq!(translate(r"[]$]$"), r"[]$]\z");
        assert_eq!(translate(r"[^]$]$"), r"[^]$]\z");
    }

    #[test]
    fn white_space_is_unicode_white_space() {
        assert_eq!(translate(r"\s"), format!("[{WHITE_SPACE}]"));
        assert_eq!(
            translate(r"[^\s\p{L}]"),
            format!(r"[^{WHITE_SPACE}\p{{L}}]")
        );
        assert_eq!(translate(r"\S\\s"), format!(r"[^{WHITE_SPACE}]\\s"));
        // U+180E is not White_Space: " \u{180e}" is punctuation-like, as in
        // tiktoken; U+2028 is White_Space. (Reference pieces from tiktoken.)
        assert_eq!(
            pieces(CL100K_PATTERN, "a \u{180e}b"),
            vec!["a", " \u{180e}", "b"]
        );
        assert_eq!(
            pieces(CL100K_PATTERN, "a \u{2028}b"),
            vec!["a", " ", "\u{2028}b"]
        );
    }

    #[test]
    fn cl100k_splits_like_tiktoken() {
        // Reference pieces from tiktoken's cl100k_base regex.
        assert_eq!(
            pieces(CL100K_PATTERN, "Hello world's  123456 \n\n x!!"),
            vec!["Hello", " world", "'s", " ", " ", "123", "456", " \n\n", " x", "!!"]
        );
        // `$` is end of text only: trailing "  \n" is one piece.
        assert_eq!(pieces(CL100K_PATTERN, "a  \n"), vec!["a", "  \n"]);
    }

    #[test]
    fn gpt2_lookahead_keeps_space_for_next_word() {
        assert_eq!(pieces(GPT2_PATTERN, "a   b"), vec!["a", "  ", " b"]);
    }

    #[test]
    fn unmatched_text_is_kept() {
        assert_eq!(pieces("a", "xaay"), vec!["x", "a", "a", "y"]);
        let t = "日本語 text, 123!";
        assert_eq!(pieces(O200K_PATTERN, t).concat(), t);
    }

    #[test]
    fn bad_pattern_is_an_error_naming_it() {
        let e = Pretokenizer::new("(unclosed").err().unwrap();
        assert!(e.to_string().contains("(unclosed"));
    }
}
