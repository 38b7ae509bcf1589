//! C4's heuristics (Raffel et al. 2020) as datatrove's `C4QualityFilter`
//! defines them: lines are dropped (no terminal punctuation, too few words,
//! "javascript", policy boilerplate, an over-long word); the document is
//! dropped for "lorem ipsum", a curly bracket, or too few sentences left.
//! Kept documents keep only their kept lines.

use super::text::{is_space, splitlines, strip};
use super::{words, Reason};

#[derive(Clone, Debug)]
pub struct C4 {
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// -1 disables.
    pub min_num_sentences: i64,
    /// -1 disables.
    pub min_words_per_line: i64,
    /// -1 disables.
    pub max_word_length: i64,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4 {
    fn default() -> Self {
        C4 {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// Removes `\[\d*]|\[edit]|\[citation needed]` (`\d` is any Unicode digit).
fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('[') {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(p) = rest.find('[') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let digits = after
            .char_indices()
            .take_while(|(_, c)| {
                c.is_numeric()
                    && unicode_general_category::get_general_category(*c)
                        == unicode_general_category::GeneralCategory::DecimalNumber
            })
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        if let Some(r) = after[digits..].strip_prefix(']') {
            rest = r;
        } else if let Some(r) = after.strip_prefix("edit]") {
            rest = r;
        } else if let Some(r) = after.strip_prefix("citation needed]") {
            rest = r;
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out.into()
}

fn ends_terminal(line: &str) -> bool {
    line.ends_with(['.', '?', '!', '"', '\'']) && !line.ends_with("...")
}

impl C4 {
    /// `Ok(kept text)` or `Err(the rule that drops the document)`.
    pub fn apply(&self, text: &str) -> Result<String, Reason> {
        let mut sentences: i64 = 0;
        let mut kept: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        for line in splitlines(text) {
            let line = strip(line);
            let mut n_words: i64 = 0;
            let mut too_long = false;
            for w in line.split(is_space).filter(|w| !w.is_empty()) {
                n_words += 1;
                if self.max_word_length != -1
                    && super::text::py_len(w) as i64 > self.max_word_length
                {
                    too_long = true;
                }
            }
            if too_long {
                continue;
            }
            let line = if self.remove_citations {
                remove_citations(line)
            } else {
                line.into()
            };
            if self.filter_no_terminal_punct && !ends_terminal(&line) {
                continue;
            }
            if n_words < self.min_words_per_line {
                continue;
            }
            let lower = line.to_lowercase();
            if self.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                return Err("lorem_ipsum".into());
            }
            if self.filter_javascript && lower.contains("javascript") {
                continue;
            }
            if self.filter_curly_bracket && line.contains('{') {
                return Err("curly_bracket".into());
            }
            if self.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
                continue;
            }
            if self.min_num_sentences != -1 {
                sentences += words::count_sentences(&line) as i64;
            }
            kept.push(line);
        }
        if sentences < self.min_num_sentences {
            return Err("too_few_sentences".into());
        }
        Ok(strip(&kept.join("\n")).to_string())
    }

    /// None to keep `text`, else the rule that drops it.
    pub fn check(&self, text: &str) -> Option<Reason> {
        self.apply(text).err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations() {
        assert_eq!(
            remove_citations("a[1] b[edit] c[citation needed] d[x]"),
            "a b c d[x]"
        );
        assert_eq!(remove_citations("[]x[٣]"), "x");
    }

    #[test]
    fn rules_fire_with_their_names() {
        let f = C4::default();
        let good =
            "This is a line. It has two sentences.\nMenu\nAnother line here. And more! Really?\n";
        assert_eq!(
            f.apply(good).unwrap(),
            "This is a line. It has two sentences.\nAnother line here. And more! Really?"
        );
        assert_eq!(
            f.check("One line only.").as_deref(),
            Some("too_few_sentences")
        );
        let lorem = format!("{good}Lorem ipsum dolor sit amet.");
        assert_eq!(f.check(&lorem).as_deref(), Some("lorem_ipsum"));
        let code = format!("{good}fn main() {{ println!(\"hi\"); }}.");
        assert_eq!(f.check(&code).as_deref(), Some("curly_bracket"));
        let js = "Please enable JavaScript to see this. One. Two. Three. Four.\nok";
        assert_eq!(f.check(js).as_deref(), Some("too_few_sentences"));
    }
}
