//! HTML to main text: decode the bytes, parse them into a small arena DOM,
//! find the main content (article body, forum posts, documentation text,
//! product description) and render it as plain text, with the page's title
//! and language hint as metadata.
//!
//! `decode` (bytes → text) → `dom` (tokens → tree, `tags` says what each
//! element is) → `score` (chrome, text and prose per node) → `choose` (the
//! main content) → `render` (tree → text). Every pass is iterative and
//! linear in the page, so malformed, deep or huge pages cannot overflow the
//! stack or go quadratic.

pub mod choose;
pub mod decode;
pub mod dom;
pub mod render;
pub mod score;
pub mod tags;

use crate::guard::{self, Doc};

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

/// One page as the caller has it: text is parsed as is, bytes are decoded
/// first (byte-order mark, `<meta charset>`, then detection helped by the
/// URL's top-level domain).
#[derive(Clone, Copy, Debug)]
pub enum Html<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// Extracts one page.
pub fn extract(page: Html<'_>, url: Option<&str>) -> Extracted {
    match page {
        Html::Text(s) => extract_str(s),
        Html::Bytes(b) => extract_bytes(b, url),
    }
}

/// Extracts every page of a batch in parallel (call it on the pool), under
/// the one panic policy (`crate::guard`): a page whose extraction panics
/// comes back as [`Doc::Failed`], told apart from a page without main
/// content (`Done` with no text). `urls` is empty or has one per page.
pub fn extract_batch(pages: &[Option<Html<'_>>], urls: &[Option<&str>]) -> Vec<Doc<Extracted>> {
    let docs: Vec<Option<(Html<'_>, Option<&str>)>> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| p.map(|p| (p, urls.get(i).copied().flatten())))
        .collect();
    guard::map_documents(&docs, |&(page, url)| extract(page, url))
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
    // Text without a letter or digit (a lone "|", a row of dashes) is not content.
    let has_words = text.chars().any(char::is_alphanumeric);
    Extracted {
        text: has_words.then(|| text.to_string()),
        title,
        lang: dom.lang.clone(),
    }
}

/// Below this many bytes of visible main text, hidden elements are shown.
const SECOND_LOOK_BELOW: usize = 200;

fn content(dom: &dom::Dom, drop_hidden: bool) -> String {
    let analysis = score::analyze(dom, drop_hidden);
    let choice = choose::main_content(dom, &analysis);
    render::render(dom, &analysis, &choice)
}

fn collapse(s: &str) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        extract_str(html).text.unwrap_or_default()
    }

    const ARTICLE: &str = "<p>The committee met on Tuesday to discuss the budget, which had grown by a third since last year, and agreed on a plan.</p>\
        <p>Members argued about the schedule, the staffing and the cost of the new building, but in the end they voted in favour.</p>\
        <p>The plan now goes to the council, which will decide in March whether to approve it, delay it, or send it back.</p>";

    #[test]
    fn chrome_is_removed_and_content_kept() {
        let html = format!(
            "<html lang=en-GB><head><title> Budget  approved </title></head><body>\
             <div id=cookie-banner>We use cookies to improve your experience. Accept all cookies?</div>\
             <header><a href=/>Home</a> <a href=/news>News</a></header>\
             <nav><ul><li><a href=/a>Politics</a><li><a href=/b>Sport</a></ul></nav>\
             <article><h1>Budget approved</h1>{ARTICLE}\
             <ul><li>First point of the plan</li><li>Second point of the plan</li></ul>\
             <div class=share-buttons><a href=/t>Tweet</a> <a href=/f>Share</a></div></article>\
             <aside>Most read: other stories you may like</aside>\
             <footer>Copyright 2026 The Paper. All rights reserved.</footer></body></html>"
        );
        let got = extract_str(&html);
        let t = got.text.unwrap();
        assert!(t.contains("The committee met on Tuesday"), "{t}");
        assert!(t.contains("send it back."), "{t}");
        assert!(
            t.contains("- First point of the plan\n- Second point of the plan"),
            "{t}"
        );
        assert!(t.contains("Budget approved\n\nThe committee"), "{t}");
        for junk in [
            "cookies",
            "Politics",
            "Tweet",
            "Most read",
            "Copyright",
            "Home",
        ] {
            assert!(!t.contains(junk), "{junk:?} leaked into {t:?}");
        }
        assert!(
            t.contains("last year, and agreed on a plan.\n\nMembers argued"),
            "{t}"
        );
        assert_eq!(got.title.as_deref(), Some("Budget approved"));
        assert_eq!(got.lang.as_deref(), Some("en-GB"));
    }

    #[test]
    fn forum_posts_are_all_kept() {
        let post = |who: &str, body: &str| {
            format!("<div class=post><div class=author><a href=/u>{who}</a></div><div class=post-body><p>{body}</p></div></div>")
        };
        let html = format!(
            "<body><nav><a href=/>Forums</a> <a href=/new>New posts</a></nav><div class=thread>{}{}{}</div></body>",
            post("ann", "Has anyone tried the new lens on a full-frame body, and how does it handle flare at night?"),
            post("bob", "Yes, I have used it for a month, and flare is well controlled, though corners are soft wide open."),
            post("cy", "Stopping down to f/4 fixes the corners in my experience, and the colour rendering is lovely."),
        );
        let t = text(&html);
        assert!(t.contains("Has anyone tried"), "{t}");
        assert!(t.contains("Yes, I have used it"), "{t}");
        assert!(t.contains("Stopping down"), "{t}");
        assert!(!t.contains("New posts"), "{t}");
    }

    #[test]
    fn line_breaks() {
        assert_eq!(
            text("<p>one<br>two<br><br>three<br> <br>four</p>"),
            "one\ntwo\n\nthree\n\nfour"
        );
        assert_eq!(text("<pre>a\n  b</pre>"), "a\n  b");
    }

    #[test]
    fn empty_and_textless_pages_have_no_content() {
        assert_eq!(extract_bytes(b"", None), Extracted::default());
        assert_eq!(
            extract_str("<html><body><script>var x = 1;</script></body></html>").text,
            None
        );
        assert_eq!(extract_str("   \n\t ").text, None);
    }

    #[test]
    fn malformed_and_unclosed_markup() {
        let cases = [
            "<p>unclosed <b>bold <i>both</b> italic</i> after",
            "<div><p>one<p>two</div></div></div></span>",
            "<<<>>></p></p><p <p>>text",
            "<table><td>cell<tr><td>row two</table><p>after table",
            "<a href='x>broken attribute <p>text",
            "<!-- unterminated comment <p>hidden",
            "<script>never closed <p>not text",
            "<svg><p>inside svg</svg><p>outside, a paragraph of some length to be kept.",
            "&amp &lt;&gt; &#x41; &#99999999; &bogus; text",
            "</html></body><body><html>late",
        ];
        for html in cases {
            let got = extract_str(html);
            if let Some(t) = got.text {
                assert_eq!(t.trim(), t, "{html}");
                assert!(!t.contains("\n\n\n"), "{html}");
            }
        }
        assert_eq!(text("<<<>>></p></p><p <p>>text"), "<<<>>>\n\n>text");
        assert!(!text("<script>never closed <p>not text").contains("not text"));
        assert!(text("<p>unclosed <b>bold <i>both</b> italic</i> after")
            .contains("bold both italic after"));
        assert!(text("<table><td>cell<tr><td>row two</table><p>after").contains("cell\nrow two"));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        for open in ["<div>", "<span>", "<b>", "<li>", "<table>", "<a href=x>"] {
            let html = open.repeat(100_000) + "deep text here" + &"</div>".repeat(1000);
            let got = extract_str(&html);
            let t = got.text.unwrap();
            assert_eq!(t.trim_start_matches("- "), "deep text here", "{open}");
        }
    }

    #[test]
    fn twenty_megabyte_page_finishes() {
        let para = "<div class=c><p>Some words, of a long page, repeated again and again to reach many bytes.</p><a href=/x>link</a></div>\n";
        let html = format!("<title>big</title>{}", para.repeat(20_000_000 / para.len()));
        assert!(html.len() >= 19_900_000);
        let got = extract_str(&html);
        let t = got.text.unwrap();
        assert!(t.len() > 1_000_000, "{}", t.len());
        assert_eq!(got.title.as_deref(), Some("big"));
    }

    #[test]
    fn binary_garbage_does_not_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in [1usize, 7, 100, 10_000, 300_000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let got = extract_bytes(&bytes, Some("http://example.com/"));
            if let Some(t) = got.text {
                assert!(!t.trim().is_empty());
            }
        }
    }

    #[test]
    fn wrong_declared_charset_still_decodes() {
        let html = "<meta charset=windows-1252><title>Café</title><p>Größere Straßen führen über die Brücke, sagte der Bürgermeister.</p>";
        let got = extract_bytes(html.as_bytes(), None);
        assert_eq!(got.title.as_deref(), Some("Café"));
        assert!(got.text.unwrap().contains("Größere Straßen"));
        let latin1 = b"<meta charset=utf-8><p>Ol\xe1, a pol\xedcia chegou \xe0 cidade e a popula\xe7\xe3o aplaudiu.</p>";
        let t = extract_bytes(latin1, Some("https://example.br/"))
            .text
            .unwrap();
        assert!(t.contains("população"), "{t}");
    }
}
