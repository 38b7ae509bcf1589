//! HTML to main text: decode the bytes, parse them into a small arena DOM,
//! find the main content (article body, forum posts, documentation text,
//! product description) and render it as plain text, with the page's title
//! and language hint as metadata.
//!
//! `decode` (bytes → text) → `dom` (tokens → tree) → `score` (boilerplate and
//! main-content choice) → `render` (tree → text). Every pass is iterative and
//! linear in the page, so malformed, deep or huge pages cannot overflow the
//! stack or go quadratic.

pub mod decode;
pub mod dom;
pub mod render;
pub mod score;
pub mod tags;

/// What extraction found in one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The main content; `None` when the page has none.
    pub text: Option<String>,
    /// `<title>`, else `og:title`; whitespace collapsed.
    pub title: Option<String>,
    /// `<html lang>`, as written.
    pub lang: Option<String>,
}

/// Extracts the main content of an HTML page given as bytes (any charset).
pub fn extract_bytes(html: &[u8], url: Option<&str>) -> Extracted {
    extract_str(&decode::decode(html, url))
}

/// Extracts the main content of an HTML page given as text.
pub fn extract_str(html: &str) -> Extracted {
    let dom = dom::Dom::parse(html);
    let mut text = content(&dom, true);
    // Pages that keep their content hidden until a script shows it leave
    // next to nothing visible: take a second look with hidden elements shown.
    if text.trim().len() < SECOND_LOOK_BELOW {
        let shown = content(&dom, false);
        if shown.trim().len() > text.trim().len() {
            text = shown;
        }
    }
    let text = text.trim();
    let title = collapse(&dom.title).or_else(|| dom.og_title.as_deref().and_then(collapse));
    Extracted {
        text: (!text.is_empty()).then(|| text.to_string()),
        title,
        lang: dom.lang.clone(),
    }
}

/// Below this many bytes of visible main text, hidden elements are shown.
const SECOND_LOOK_BELOW: usize = 200;

fn content(dom: &dom::Dom, drop_hidden: bool) -> String {
    let analysis = score::analyze(dom, drop_hidden);
    let choice = score::main_content(dom, &analysis);
    render::render(dom, &analysis, &choice)
}

fn collapse(s: &str) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then_some(t)
}
