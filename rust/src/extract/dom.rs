//! A small arena DOM built from html5ever's tokenizer.
//!
//! html5ever's spec tree builder walks the stack of open elements for its
//! scope checks, which turns 100,000-deep nesting quadratic, and allocates a
//! reference-counted node per element. Extraction only needs a tree good
//! enough to tell blocks apart, so we keep html5ever's tokenizer (states,
//! entities, raw-text elements, comments: the hard part) and build the tree
//! ourselves with the implied-end rules that matter for text (`<p>`, `<li>`,
//! `<dt>`/`<dd>`, table cells, headings) and two caps that keep every step
//! bounded: a depth cap and a cap on how far an end tag searches for its
//! element.
//!
//! Nodes sit in one `Vec` in document order, so a child's index is always
//! larger than its parent's: bottom-up passes run backwards over the vector
//! and top-down passes forwards, with no recursion anywhere.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::{local_name, LocalName, TokenizerResult};

use super::tags::{self, Tag};

/// Deeper elements are attached flat to the element at this depth.
pub const MAX_DEPTH: usize = 256;
/// How many open elements an end tag or an implied end searches: all of
/// them, as the stack never grows past MAX_DEPTH, which bounds each search.
const MAX_SEARCH: usize = MAX_DEPTH + 1;
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: u32,
    pub first_child: u32,
    pub last_child: u32,
    pub next_sibling: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Element(Element),
    /// A byte range of `Dom::text`, entities already decoded.
    Text(u32, u32),
}

#[derive(Debug, Clone)]
pub struct Element {
    pub tag: Tag,
    /// What the `id`/`class`/`role` attributes say about the element.
    pub hint: tags::Hint,
    /// `hidden`, `aria-hidden="true"` or an inline `display:none`.
    pub hidden: bool,
}

#[derive(Debug, Default)]
pub struct Dom {
    pub nodes: Vec<Node>,
    pub text: String,
    pub title: String,
    pub lang: Option<String>,
    pub og_title: Option<String>,
}

impl Dom {
    pub fn parse(html: &str) -> Dom {
        let builder = Builder::default();
        builder.dom.borrow_mut().nodes.push(Node {
            parent: NONE,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            kind: Kind::Element(Element {
                tag: Tag::Root,
                hint: tags::Hint::default(),
                hidden: false,
            }),
        });
        builder.stack.borrow_mut().push((0, Tag::Root));
        let tok = Tokenizer::new(builder, TokenizerOpts::default());
        let queue = BufferQueue::default();
        queue.push_back(StrTendril::from_slice(html));
        while let TokenizerResult::Script(_) = tok.feed(&queue) {}
        tok.end();
        tok.sink.dom.take()
    }

    pub fn text_of(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    pub fn element(&self, i: u32) -> Option<&Element> {
        match &self.nodes[i as usize].kind {
            Kind::Element(e) => Some(e),
            Kind::Text(..) => None,
        }
    }

    pub fn tag(&self, i: u32) -> Option<Tag> {
        self.element(i).map(|e| e.tag)
    }

    /// Children of `i` in order.
    pub fn children(&self, i: u32) -> Children<'_> {
        Children {
            dom: self,
            next: self.nodes[i as usize].first_child,
        }
    }
}

pub struct Children<'a> {
    dom: &'a Dom,
    next: u32,
}

impl Iterator for Children<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.next == NONE {
            return None;
        }
        let cur = self.next;
        self.next = self.dom.nodes[cur as usize].next_sibling;
        Some(cur)
    }
}

#[derive(Default)]
struct Builder {
    dom: RefCell<Dom>,
    /// Open elements: (node index, tag). Never longer than MAX_DEPTH + 1.
    stack: RefCell<Vec<(u32, Tag)>>,
    /// Inside `<title>`: its text goes to `Dom::title`.
    in_title: RefCell<bool>,
    /// Inside a raw-text element whose text we drop (script, style, ...).
    in_raw: RefCell<bool>,
    /// `<head>` is open: the first element that cannot be in it closes it.
    in_head: RefCell<bool>,
}

impl Builder {
    fn append(&self, dom: &mut Dom, parent: u32, kind: Kind) -> u32 {
        let id = dom.nodes.len() as u32;
        dom.nodes.push(Node {
            parent,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            kind,
        });
        let p = &mut dom.nodes[parent as usize];
        let last = p.last_child;
        p.last_child = id;
        if last == NONE {
            p.first_child = id;
        } else {
            dom.nodes[last as usize].next_sibling = id;
        }
        id
    }

    fn characters(&self, s: &str) {
        if *self.in_raw.borrow() {
            return;
        }
        if *self.in_title.borrow() {
            self.dom.borrow_mut().title.push_str(s);
            return;
        }
        let parent = self.stack.borrow().last().map_or(0, |&(i, _)| i);
        let mut dom = self.dom.borrow_mut();
        let start = dom.text.len() as u32;
        // Text beyond 4 GiB cannot be addressed by u32 ranges; drop it.
        if dom.text.len() + s.len() > u32::MAX as usize {
            return;
        }
        dom.text.push_str(s);
        let end = dom.text.len() as u32;
        // Adjacent character tokens (split by a NUL or by the tokenizer's
        // buffering) extend the previous text node instead of adding one.
        let last = dom.nodes[parent as usize].last_child;
        if last != NONE {
            if let Kind::Text(s0, e0) = dom.nodes[last as usize].kind {
                if e0 == start {
                    dom.nodes[last as usize].kind = Kind::Text(s0, end);
                    return;
                }
            }
        }
        self.append(&mut dom, parent, Kind::Text(start, end));
    }

    /// Pops open elements down to and including the topmost one for which
    /// `is_target` holds, searching at most MAX_SEARCH elements and stopping
    /// at one for which `is_boundary` holds.
    fn close(&self, is_target: impl Fn(Tag) -> bool, is_boundary: impl Fn(Tag) -> bool) {
        let mut stack = self.stack.borrow_mut();
        let n = stack.len();
        for k in (1..n).rev().take(MAX_SEARCH) {
            let t = stack[k].1;
            if is_target(t) {
                stack.truncate(k);
                return;
            }
            if is_boundary(t) {
                return;
            }
        }
    }

    fn start_tag(&self, name: &LocalName, attrs: &[html5ever::Attribute], self_closing: bool) {
        let tag = tags::classify(name);
        match tag {
            Tag::Title => {
                // Only the first title counts (svg and later ones are not the page's).
                if self.dom.borrow().title.is_empty() {
                    *self.in_title.borrow_mut() = true;
                } else {
                    *self.in_raw.borrow_mut() = true;
                }
                return;
            }
            Tag::Html => {
                for a in attrs {
                    // The first <html lang> wins, as browsers merge later ones.
                    if a.name.local == local_name!("lang") && !a.value.trim().is_empty() {
                        self.dom
                            .borrow_mut()
                            .lang
                            .get_or_insert_with(|| a.value.trim().to_string());
                    }
                }
            }
            Tag::Meta => {
                let mut is_og_title = false;
                let mut content = None;
                for a in attrs {
                    match a.name.local {
                        local_name!("property") | local_name!("name") => {
                            is_og_title |= a.value.eq_ignore_ascii_case("og:title")
                        }
                        local_name!("content") => content = Some(a.value.trim().to_string()),
                        _ => {}
                    }
                }
                if let (true, Some(c)) = (is_og_title, content) {
                    self.dom.borrow_mut().og_title.get_or_insert(c);
                }
                return;
            }
            _ => {}
        }
        if *self.in_head.borrow() {
            let head_content = matches!(
                tag,
                Tag::Meta | Tag::Void | Tag::Title | Tag::RawText | Tag::Script | Tag::Junk
            ) || *name == local_name!("noscript");
            if !head_content {
                *self.in_head.borrow_mut() = false;
                self.close(|t| t == Tag::Head, |_| false);
            }
        }
        if tag == Tag::Head {
            *self.in_head.borrow_mut() = true;
        }
        // Implied ends, as the HTML spec has them for the elements that shape text.
        if tag.closes_p() {
            self.close(|t| t == Tag::P, Tag::is_scope_boundary);
        }
        match tag {
            Tag::Li => self.close(
                |t| t == Tag::Li,
                |t| matches!(t, Tag::Ul | Tag::Ol) || t.is_scope_boundary(),
            ),
            Tag::Dt | Tag::Dd => self.close(
                |t| matches!(t, Tag::Dt | Tag::Dd),
                |t| t == Tag::Dl || t.is_scope_boundary(),
            ),
            Tag::Td | Tag::Th => self.close(
                |t| matches!(t, Tag::Td | Tag::Th),
                |t| matches!(t, Tag::Tr | Tag::Table),
            ),
            Tag::Tr => self.close(|t| t == Tag::Tr, |t| t == Tag::Table),
            Tag::H(_) => {
                let top = self.stack.borrow().last().map(|&(_, t)| t);
                if matches!(top, Some(Tag::H(_))) {
                    self.stack.borrow_mut().pop();
                }
            }
            Tag::A => self.close(|t| t == Tag::A, Tag::is_scope_boundary),
            Tag::Option => self.close(|t| t == Tag::Option, |t| t != Tag::Option),
            _ => {}
        }

        let mut hidden = false;
        let mut hint = tags::Hint::default();
        for a in attrs {
            match a.name.local {
                local_name!("id") | local_name!("class") => hint.add_names(&a.value),
                local_name!("role") => hint.add_role(&a.value),
                local_name!("hidden") => hidden = true,
                local_name!("aria-hidden") => hidden |= a.value.trim().eq_ignore_ascii_case("true"),
                local_name!("style") => hidden |= tags::style_hides(&a.value),
                local_name!("aria-modal") => hint.add_role("dialog"),
                _ => {}
            }
        }
        let parent = self.stack.borrow().last().map_or(0, |&(i, _)| i);
        let id = {
            let mut dom = self.dom.borrow_mut();
            self.append(
                &mut dom,
                parent,
                Kind::Element(Element { tag, hint, hidden }),
            )
        };
        if tag.is_void() || self_closing {
            return;
        }
        if tag.is_raw_text() {
            *self.in_raw.borrow_mut() = true;
        }
        let mut stack = self.stack.borrow_mut();
        if stack.len() <= MAX_DEPTH {
            stack.push((id, tag));
        }
    }

    fn end_tag(&self, name: &LocalName) {
        let tag = tags::classify(name);
        match tag {
            Tag::Title => {
                *self.in_title.borrow_mut() = false;
                *self.in_raw.borrow_mut() = false;
                return;
            }
            Tag::Br => {
                // `</br>` is a line break in browsers too.
                self.start_tag(name, &[], true);
                return;
            }
            _ => {}
        }
        if tag.is_raw_text() {
            *self.in_raw.borrow_mut() = false;
        }
        if tag == Tag::Head {
            *self.in_head.borrow_mut() = false;
        }
        match tag {
            Tag::Other(_) => {
                // Unknown elements match by name.
                let mut stack = self.stack.borrow_mut();
                let dom = self.dom.borrow();
                let n = stack.len();
                for k in (1..n).rev().take(MAX_SEARCH) {
                    let (id, t) = stack[k];
                    if t == tag && dom.tag(id) == Some(tag) {
                        stack.truncate(k);
                        return;
                    }
                }
            }
            _ => self.close(|t| t == tag, |_| false),
        }
    }
}

impl TokenSink for Builder {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::CharacterTokens(s) => self.characters(&s),
            Token::TagToken(tag) => match tag.kind {
                TagKind::StartTag => {
                    self.start_tag(&tag.name, &tag.attrs, tag.self_closing);
                    let t = tags::classify(&tag.name);
                    if t == Tag::Title || t == Tag::Textarea {
                        return TokenSinkResult::RawData(RawKind::Rcdata);
                    }
                    if t.is_raw_text() && !tag.self_closing {
                        return if t == Tag::Script {
                            TokenSinkResult::RawData(RawKind::ScriptData)
                        } else if t == Tag::Plaintext {
                            TokenSinkResult::Plaintext
                        } else {
                            TokenSinkResult::RawData(RawKind::Rawtext)
                        };
                    }
                }
                TagKind::EndTag => self.end_tag(&tag.name),
            },
            Token::NullCharacterToken
            | Token::CommentToken(_)
            | Token::DoctypeToken(_)
            | Token::EOFToken
            | Token::ParseError(_) => {}
        }
        TokenSinkResult::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_under(dom: &Dom, i: u32) -> Vec<Tag> {
        dom.children(i).filter_map(|c| dom.tag(c)).collect()
    }

    #[test]
    fn unclosed_paragraphs_and_items_become_siblings() {
        let dom = Dom::parse("<body><p>a<p>b<ul><li>x<li>y</ul><div>d</div>");
        let body = dom.children(0).next().unwrap();
        assert_eq!(
            tags_under(&dom, body),
            vec![Tag::P, Tag::P, Tag::Ul, Tag::Div]
        );
        let ul = dom.children(body).nth(2).unwrap();
        assert_eq!(tags_under(&dom, ul), vec![Tag::Li, Tag::Li]);
    }

    #[test]
    fn body_content_closes_an_unclosed_head() {
        let dom = Dom::parse("<html><head><title>t</title><meta charset=utf-8><div>x</div>");
        let html = dom.children(0).next().unwrap();
        assert_eq!(tags_under(&dom, html), vec![Tag::Head, Tag::Div]);
    }

    #[test]
    fn script_text_is_dropped_and_markup_inside_it_ignored() {
        let dom = Dom::parse("<p>a<script>if (a<b) { x = '</p><div>'; }</script>b</p>");
        assert_eq!(dom.text, "ab");
    }

    #[test]
    fn title_lang_and_entities() {
        let dom = Dom::parse("<html lang=de><title>T &amp; U</title><p>&lt;x&gt;<html lang=fr>");
        assert_eq!(dom.title, "T & U");
        assert_eq!(dom.lang.as_deref(), Some("de"));
        assert_eq!(dom.text, "<x>");
    }

    #[test]
    fn deep_nesting_is_capped_without_recursion() {
        let n = 100_000;
        let html = "<div>".repeat(n) + "deep" + &"</div>".repeat(n);
        let dom = Dom::parse(&html);
        assert_eq!(dom.nodes.len(), n + 2);
        assert_eq!(dom.text, "deep");
    }
}
