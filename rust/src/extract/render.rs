//! The chosen subtrees as plain text: paragraphs separated by blank lines,
//! list items and table rows on their own lines, whitespace collapsed
//! (except in `<pre>`), and chrome inside the content left out.

use super::choose::Choice;
use super::dom::{Dom, Kind};
use super::score::Analysis;
use super::tags::Tag;

/// Link-dense blocks inside the content (tag lists, "related" lists, share
/// rows) are dropped when their link text is at least this share...
const LINK_DENSITY_MAX: f32 = 0.65;
/// ...and they are shorter than this many characters.
const LINK_BLOCK_MAX_LEN: u32 = 400;

struct Out {
    text: String,
    /// Line breaks owed before the next text: 0, 1 (new line) or 2 (blank line).
    breaks: u8,
    /// A space is owed before the next text.
    space: bool,
    /// "- " is owed before the next text (a list item started).
    bullet: bool,
    /// The owed line break came from a `<br>`: a second one makes it a
    /// paragraph break (`<br><br>` separates paragraphs on many sites).
    after_br: bool,
}

impl Out {
    fn block(&mut self, breaks: u8) {
        self.breaks = self.breaks.max(breaks);
    }

    fn push(&mut self, s: &str, pre: bool) {
        if pre {
            if s.is_empty() {
                return;
            }
            self.flush();
            self.text.push_str(s);
            return;
        }
        // Control characters (a stray \x1c, a NUL) separate words like spaces.
        let sep = |c: char| c.is_whitespace() || c.is_control();
        let mut words = s.split(sep).filter(|w| !w.is_empty()).peekable();
        if words.peek().is_none() {
            if !s.is_empty() {
                self.space = true;
            }
            return;
        }
        if s.starts_with(sep) {
            self.space = true;
        }
        self.flush();
        let mut first = true;
        for w in words {
            if !first {
                self.text.push(' ');
            }
            self.text.push_str(w);
            first = false;
        }
        self.space = s.ends_with(sep);
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            match self.breaks {
                0 => {
                    if self.space {
                        self.text.push(' ');
                    }
                }
                1 => self.text.push('\n'),
                _ => self.text.push_str("\n\n"),
            }
        }
        if self.bullet {
            self.text.push_str("- ");
            self.bullet = false;
        }
        self.breaks = 0;
        self.space = false;
        self.after_br = false;
    }
}

/// Line breaks around a block: 2 for paragraphs, 1 for lines.
fn breaks_for(t: Tag) -> u8 {
    match t {
        Tag::Li | Tag::Dt | Tag::Dd | Tag::Tr | Tag::Br | Tag::Figcaption | Tag::Caption => 1,
        Tag::Td | Tag::Th => 0,
        _ => 2,
    }
}

/// Whether a subtree inside the content is chrome to leave out.
fn skip(dom: &Dom, a: &Analysis, i: u32, is_root: bool, keep_links: bool) -> bool {
    let iu = i as usize;
    if a.dead[iu] || a.boiler[iu] {
        return true;
    }
    let Some(e) = dom.element(i) else {
        return false;
    };
    if is_root || keep_links {
        return false;
    }
    // Headings stay even when they are links: the titles of teasers and
    // posts are content wherever the teasers are.
    if e.tag.is_block() && !matches!(e.tag, Tag::Li | Tag::H(_)) {
        let len = a.text_len[iu];
        if len < LINK_BLOCK_MAX_LEN && a.link_density(i) > LINK_DENSITY_MAX {
            return true;
        }
    }
    false
}

/// Renders the subtrees `roots` (in document order).
pub fn render(dom: &Dom, a: &Analysis, choice: &Choice) -> String {
    let roots = &choice.roots[..];
    let mut out = Out {
        text: String::new(),
        breaks: 0,
        space: false,
        bullet: false,
        after_br: false,
    };
    // Explicit stack of (node, leaving, inside <pre>): pages nest deeper
    // than a thread's stack would allow recursion to go.
    let mut stack: Vec<(u32, bool, bool)> = Vec::new();
    for &r in roots.iter().rev() {
        stack.push((r, false, false));
    }
    let mut root_set = roots.to_vec();
    root_set.sort_unstable();
    while let Some((i, leaving, pre)) = stack.pop() {
        match &dom.nodes[i as usize].kind {
            Kind::Text(s, e) => {
                if !a.dead[i as usize] && !a.boiler[i as usize] {
                    out.push(dom.text_of(*s, *e), pre);
                }
            }
            Kind::Element(e) => {
                let block = e.tag.is_block();
                if leaving {
                    if e.tag == Tag::Li {
                        out.bullet = false;
                    }
                    if block {
                        out.block(breaks_for(e.tag));
                    }
                    if matches!(e.tag, Tag::Td | Tag::Th) {
                        out.space = true;
                    }
                    continue;
                }
                if skip(
                    dom,
                    a,
                    i,
                    root_set.binary_search(&i).is_ok(),
                    choice.keep_links,
                ) {
                    continue;
                }
                match e.tag {
                    Tag::Br => {
                        out.block(if out.after_br { 2 } else { 1 });
                        out.after_br = true;
                        continue;
                    }
                    Tag::Li => {
                        out.block(1);
                        out.bullet = true;
                    }
                    t if block => out.block(breaks_for(t)),
                    _ => {}
                }
                stack.push((i, true, pre));
                let inner_pre = pre || e.tag == Tag::Pre;
                let first = stack.len();
                for c in dom.children(i) {
                    stack.push((c, false, inner_pre));
                }
                stack[first..].reverse();
            }
        }
    }
    out.text
}
