//! What an element is for: its tag's role in text layout and what its
//! `id`/`class`/`role` attributes say about boilerplate.

use html5ever::{local_name, LocalName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// The document node (not an element of the page).
    Root,
    Html,
    Head,
    Body,
    Title,
    Meta,
    Main,
    Article,
    Section,
    Div,
    P,
    H(u8),
    Ul,
    Ol,
    Li,
    Dl,
    Dt,
    Dd,
    Table,
    Tr,
    Td,
    Th,
    Caption,
    Blockquote,
    Pre,
    Figure,
    Figcaption,
    Form,
    Header,
    Footer,
    Nav,
    Aside,
    Br,
    Hr,
    A,
    Img,
    Textarea,
    Option,
    Script,
    Plaintext,
    /// Raw-text elements other than script: style, xmp, iframe, noembed,
    /// noframes, noscript.
    RawText,
    /// Elements whose content is never page text: svg, math, template,
    /// select, button, object, canvas, video, audio, dialog, menu.
    Junk,
    /// Other block-level elements (address, center, details, fieldset, ...).
    Block,
    /// Void elements without text (input, link, source, wbr, ...).
    Void,
    /// Inline elements, known or not. The number is a hash of the name, so
    /// that an unknown end tag closes only its own element.
    Other(u16),
}

pub fn classify(name: &LocalName) -> Tag {
    match *name {
        local_name!("html") => Tag::Html,
        local_name!("head") => Tag::Head,
        local_name!("body") => Tag::Body,
        local_name!("title") => Tag::Title,
        local_name!("meta") => Tag::Meta,
        local_name!("main") => Tag::Main,
        local_name!("article") => Tag::Article,
        local_name!("section") => Tag::Section,
        local_name!("div") => Tag::Div,
        local_name!("p") => Tag::P,
        local_name!("h1") => Tag::H(1),
        local_name!("h2") => Tag::H(2),
        local_name!("h3") => Tag::H(3),
        local_name!("h4") => Tag::H(4),
        local_name!("h5") => Tag::H(5),
        local_name!("h6") => Tag::H(6),
        local_name!("ul") => Tag::Ul,
        local_name!("ol") => Tag::Ol,
        local_name!("li") => Tag::Li,
        local_name!("dl") => Tag::Dl,
        local_name!("dt") => Tag::Dt,
        local_name!("dd") => Tag::Dd,
        local_name!("table") => Tag::Table,
        local_name!("tr") => Tag::Tr,
        local_name!("td") => Tag::Td,
        local_name!("th") => Tag::Th,
        local_name!("caption") => Tag::Caption,
        local_name!("blockquote") => Tag::Blockquote,
        local_name!("pre") | local_name!("listing") => Tag::Pre,
        local_name!("figure") => Tag::Figure,
        local_name!("figcaption") => Tag::Figcaption,
        local_name!("form") => Tag::Form,
        local_name!("header") => Tag::Header,
        local_name!("footer") => Tag::Footer,
        local_name!("nav") => Tag::Nav,
        local_name!("aside") => Tag::Aside,
        local_name!("br") => Tag::Br,
        local_name!("hr") => Tag::Hr,
        local_name!("a") => Tag::A,
        local_name!("img") => Tag::Img,
        local_name!("textarea") => Tag::Textarea,
        local_name!("script") => Tag::Script,
        local_name!("plaintext") => Tag::Plaintext,
        local_name!("style")
        | local_name!("xmp")
        | local_name!("iframe")
        | local_name!("noembed")
        | local_name!("noframes") => Tag::RawText,
        local_name!("svg")
        | local_name!("math")
        | local_name!("template")
        | local_name!("select")
        | local_name!("button")
        | local_name!("object")
        | local_name!("canvas")
        | local_name!("video")
        | local_name!("audio")
        | local_name!("dialog")
        | local_name!("menu")
        | local_name!("datalist")
        | local_name!("map") => Tag::Junk,
        // Parsed as markup, as browsers do with scripting off: JS apps put
        // their crawler view (forum posts, articles) there.
        local_name!("noscript")
        | local_name!("address")
        | local_name!("center")
        | local_name!("details")
        | local_name!("summary")
        | local_name!("fieldset")
        | local_name!("legend")
        | local_name!("hgroup")
        | local_name!("thead")
        | local_name!("tbody")
        | local_name!("tfoot")
        | local_name!("dir")
        | local_name!("optgroup") => Tag::Block,
        local_name!("option") => Tag::Option,
        local_name!("input")
        | local_name!("link")
        | local_name!("source")
        | local_name!("track")
        | local_name!("wbr")
        | local_name!("area")
        | local_name!("base")
        | local_name!("col")
        | local_name!("embed")
        | local_name!("param")
        | local_name!("keygen") => Tag::Void,
        _ => {
            // FNV-1a folded to 16 bits: equal names give equal tags.
            let mut h: u32 = 0x811c_9dc5;
            for b in name.as_bytes() {
                h = (h ^ *b as u32).wrapping_mul(0x0100_0193);
            }
            Tag::Other((h ^ (h >> 16)) as u16)
        }
    }
}

impl Tag {
    pub fn is_void(self) -> bool {
        matches!(self, Tag::Br | Tag::Hr | Tag::Img | Tag::Meta | Tag::Void)
    }

    /// Elements whose content the tokenizer reads as raw text, which we drop.
    pub fn is_raw_text(self) -> bool {
        matches!(self, Tag::Script | Tag::RawText | Tag::Plaintext)
    }

    /// Elements that start a new block of text.
    pub fn is_block(self) -> bool {
        !matches!(
            self,
            Tag::Other(_) | Tag::A | Tag::Img | Tag::Void | Tag::Root | Tag::Br
        )
    }

    /// Starting one of these closes an open `<p>` (HTML's "close a p element").
    pub fn closes_p(self) -> bool {
        matches!(
            self,
            Tag::Main
                | Tag::Article
                | Tag::Section
                | Tag::Div
                | Tag::P
                | Tag::H(_)
                | Tag::Ul
                | Tag::Ol
                | Tag::Li
                | Tag::Dl
                | Tag::Dt
                | Tag::Dd
                | Tag::Table
                | Tag::Blockquote
                | Tag::Pre
                | Tag::Figure
                | Tag::Figcaption
                | Tag::Form
                | Tag::Header
                | Tag::Footer
                | Tag::Nav
                | Tag::Aside
                | Tag::Hr
                | Tag::Block
                | Tag::Junk
        )
    }

    /// Where implied-end searches stop (a simplified "has an element in scope").
    pub fn is_scope_boundary(self) -> bool {
        matches!(
            self,
            Tag::Table | Tag::Td | Tag::Th | Tag::Caption | Tag::Html | Tag::Body
        )
    }

    pub fn is_heading(self) -> bool {
        matches!(self, Tag::H(_))
    }
}

/// What `id`, `class` and `role` say about an element.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint {
    /// Always boilerplate: cookie banners, share widgets, navigation, ads...
    pub strong_negative: bool,
    /// Often boilerplate (comments, related links, widgets, meta lines).
    pub negative: bool,
    /// Names that mark content (article, post, entry, content, main...).
    pub positive: bool,
    /// `role="main"`.
    pub main: bool,
}

/// Substrings of a lowercased name token that mark boilerplate whatever
/// else the element is called.
const STRONG_NEGATIVE: &[&str] = &[
    "cookie",
    "consent",
    "gdpr",
    "breadcrumb",
    "newsletter",
    "advert",
    "sponsor",
    "social",
    "sharing",
    "share",
    "sidebar",
    "navbar",
    "navigation",
    "skiplink",
    "skip-link",
    "masthead",
    "popup",
    "subscribe",
    "signup",
    "pagination",
    "paywall",
    "disqus",
    "offcanvas",
    "toolbar",
];

/// Substrings that mark likely boilerplate; content names outweigh them.
const NEGATIVE: &[&str] = &[
    "footer",
    "related",
    "recommend",
    "promo",
    "comment",
    "byline",
    "author",
    "tags",
    "tagcloud",
    "login",
    "modal",
    "pager",
    "meta",
    "rating",
    "print",
    "dropdown",
    "outbrain",
    "taboola",
    "header",
    "menu",
    "banner",
    "signature",
    "profile",
    "avatar",
    "vote",
    "copyright",
];

/// Whole tokens that mark boilerplate (too short to match as substrings).
const NEGATIVE_EXACT: &[&str] = &[
    "ad", "ads", "nav", "share", "sr", "sr-only", "hidden", "hide", "d-none",
];

const POSITIVE: &[&str] = &[
    "article",
    "content",
    "post",
    "entry",
    "main",
    "body",
    "text",
    "story",
    "prose",
    "markdown",
    "blog",
    "message",
    "answer",
    "question",
    "description",
    "product",
];

/// All name patterns in one automaton, so an attribute is scanned once
/// rather than once per pattern (pages with utility-class CSS carry
/// thousands of class tokens).
static NAME_PATTERNS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        let all = STRONG_NEGATIVE.iter().chain(NEGATIVE).chain(POSITIVE);
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(all)
            .expect("static patterns compile")
    });

impl Hint {
    /// Reads an `id` or `class` value.
    pub fn add_names(&mut self, value: &str) {
        let (ns, nn) = (STRONG_NEGATIVE.len(), NEGATIVE.len());
        // Overlapping search: "comment-share" must report both patterns.
        for m in NAME_PATTERNS.find_overlapping_iter(value) {
            let k = m.pattern().as_usize();
            if k < ns + nn && describes_layout(value, m.start()) {
                continue;
            }
            if k < ns {
                self.strong_negative = true;
            } else if k < ns + nn {
                self.negative = true;
            } else {
                self.positive = true;
            }
        }
        if !self.negative {
            let exact = |t: &str| NEGATIVE_EXACT.iter().any(|e| e.eq_ignore_ascii_case(t));
            self.negative = value
                .split(|c: char| c.is_ascii_whitespace())
                .any(|tok| tok.len() <= 12 && (exact(tok) || tok.split(['-', '_']).any(exact)));
        }
    }

    /// Reads a `role` value.
    pub fn add_role(&mut self, value: &str) {
        for role in value.split_ascii_whitespace() {
            match role.to_ascii_lowercase().as_str() {
                "navigation" | "banner" | "contentinfo" | "complementary" | "menu" | "menubar"
                | "search" | "dialog" | "alertdialog" | "toolbar" | "tablist" => {
                    self.strong_negative = true
                }
                "main" | "article" => self.main = true,
                _ => {}
            }
        }
    }
}

/// Whether the class token around byte `at` describes the page's layout
/// ("has-sidebar", "no-comments") rather than naming the element itself.
fn describes_layout(value: &str, at: usize) -> bool {
    let start = value[..at]
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let token = &value.as_bytes()[start..];
    // "has-sidebar", "has_sidebar", "hasSidebar".
    [&b"has"[..], b"no", b"with", b"without", b"hide", b"show"]
        .iter()
        .any(|p| {
            token.len() > p.len()
                && token[..p.len()].eq_ignore_ascii_case(p)
                && (matches!(token[p.len()], b'-' | b'_') || token[p.len()].is_ascii_uppercase())
        })
}

/// Whether an inline `style` hides the element.
pub fn style_hides(style: &str) -> bool {
    let compact: String = style
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    compact.contains("display:none") || compact.contains("visibility:hidden")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles() {
        let mut h = Hint::default();
        h.add_names("cookie-banner fixed");
        assert!(h.strong_negative);
        let mut h = Hint::default();
        h.add_names("post-content entry");
        assert!(h.positive && !h.negative && !h.strong_negative);
        let mut h = Hint::default();
        h.add_names("top-ad");
        assert!(h.negative);
        let mut h = Hint::default();
        h.add_names("header loaded");
        assert!(h.negative && !h.strong_negative);
        let mut h = Hint::default();
        h.add_role("navigation");
        assert!(h.strong_negative);
        let mut h = Hint::default();
        h.add_names("page has-sidebar no-comments hasSidebar");
        assert!(!h.negative && !h.strong_negative);
    }

    #[test]
    fn hidden_styles() {
        assert!(style_hides("color: red; DISPLAY : none"));
        assert!(!style_hides("display:block"));
    }

    #[test]
    fn unknown_tags_hash_by_name() {
        let a = classify(&LocalName::from("my-widget"));
        assert_eq!(a, classify(&LocalName::from("my-widget")));
        assert!(matches!(a, Tag::Other(_)));
    }
}
