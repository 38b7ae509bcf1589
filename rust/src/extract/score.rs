//! Per-node facts for choosing the main content, in linear passes over the
//! arena (no recursion):
//! 1. top-down: what is dead (non-text elements; hidden ones unless they
//!    hold most of the page) and what is chrome (navigation, footers,
//!    asides, cookie banners, share bars and whatever the id/class/role
//!    names say is chrome, unless it holds most of the page);
//! 2. bottom-up: text, link text and commas per element, counting only live
//!    text outside chrome;
//! 3. readability's scoring: every text block of 25+ characters scores
//!    1 + commas + min(len/100, 3) and gives it to its ancestors, less with
//!    each level; and the prose (text blocks with few links) per subtree.
//!
//! `choose.rs` turns these into the main content.

use super::dom::{Dom, Kind, NONE};
use super::tags::Tag;

/// Per-node facts the scorer and the renderer share.
pub struct Analysis {
    /// Dropped with its subtree: hidden, or not page text at all.
    pub dead: Vec<bool>,
    /// Chrome (navigation, footer, banner...) with its subtree.
    pub boiler: Vec<bool>,
    /// Characters of live, non-boilerplate text (whitespace not counted).
    pub text_len: Vec<u32>,
    /// The part of `text_len` inside links.
    pub link_len: Vec<u32>,
    /// Readability content score, before link-density scaling.
    pub score: Vec<f32>,
    /// The text-holding block each node belongs to (itself for blocks).
    pub owner: Vec<u32>,
    /// Characters in prose blocks (25+ characters, under 30% links) below.
    pub prose: Vec<u32>,
}

impl Analysis {
    pub fn link_density(&self, i: u32) -> f32 {
        let t = self.text_len[i as usize];
        if t == 0 {
            0.0
        } else {
            self.link_len[i as usize] as f32 / t as f32
        }
    }
}

/// Live text length of a text node, its commas, and how much of it is in
/// long ASCII tokens (URLs, hashes, identifiers: 26+ characters with no
/// space), which read as data rather than prose. Scripts without spaces
/// between words (CJK) are not ASCII and are not affected.
fn measure(s: &str) -> (u32, u32, u32) {
    let mut len = 0u32;
    let mut commas = 0u32;
    let mut junk = 0u32;
    let mut token = 0u32;
    let mut ascii = true;
    for c in s.chars().chain(std::iter::once(' ')) {
        if c.is_whitespace() {
            if ascii && token > 25 {
                junk += token;
            }
            token = 0;
            ascii = true;
            continue;
        }
        len += 1;
        token += 1;
        ascii &= c.is_ascii();
        if matches!(c, ',' | '，' | '、' | '،') {
            commas += 1;
        }
    }
    (len, commas, junk)
}

/// Per-node facts for `dom`. With `drop_hidden` false, hidden elements
/// count as visible (see `extract_str`'s second look).
pub fn analyze(dom: &Dom, drop_hidden: bool) -> Analysis {
    let n = dom.nodes.len();
    let mut dead = vec![false; n];
    let mut in_link = vec![false; n];
    let mut in_article = vec![false; n];
    let mut owner = vec![0u32; n];

    // Pass 1 (top-down): dead, in_link, in_article, block owner.
    for i in 0..n {
        let p = dom.nodes[i].parent;
        let (pd, pl, pa, po) = if p == NONE {
            (false, false, false, 0)
        } else {
            let p = p as usize;
            (dead[p], in_link[p], in_article[p], owner[p])
        };
        match &dom.nodes[i].kind {
            Kind::Element(e) => {
                dead[i] = pd
                    || matches!(
                        e.tag,
                        Tag::Head | Tag::Junk | Tag::RawText | Tag::Script | Tag::Textarea
                    );
                in_link[i] = pl || e.tag == Tag::A;
                in_article[i] = pa || matches!(e.tag, Tag::Article | Tag::Main) || e.hint.main;
                owner[i] = if e.tag.is_block() { i as u32 } else { po };
            }
            Kind::Text(..) => {
                dead[i] = pd;
                in_link[i] = pl;
                in_article[i] = pa;
                owner[i] = po;
            }
        }
    }

    // Raw text per element, to protect elements that hold most of the page
    // from being called boilerplate by their names alone.
    let mut raw_len = vec![0u32; n];
    let mut commas = vec![0u32; n];
    let mut junk = vec![0u32; n];
    for i in (0..n).rev() {
        if dead[i] {
            continue;
        }
        if let Kind::Text(s, e) = dom.nodes[i].kind {
            let (len, c, j) = measure(dom.text_of(s, e));
            junk[i] = j;
            raw_len[i] = len;
            commas[i] = c;
        }
        let p = dom.nodes[i].parent;
        if p != NONE {
            raw_len[p as usize] = raw_len[p as usize].saturating_add(raw_len[i]);
        }
    }
    let total = raw_len[0].max(1);

    // Hidden elements are dropped, unless they hold most of the page: apps
    // hide the whole content with an inline style until a script shows it.
    for i in 0..n {
        let p = dom.nodes[i].parent;
        if p != NONE && dead[p as usize] {
            dead[i] = true;
        } else if let Kind::Element(e) = &dom.nodes[i].kind {
            if drop_hidden && e.hidden && raw_len[i] as f32 <= 0.5 * total as f32 {
                dead[i] = true;
            }
        }
    }

    // Pass 2 (top-down): boilerplate.
    let mut boiler = vec![false; n];
    for i in 0..n {
        let p = dom.nodes[i].parent;
        let pb = p != NONE && boiler[p as usize];
        boiler[i] = pb
            || match &dom.nodes[i].kind {
                Kind::Element(e) => {
                    let big = raw_len[i] as f32 > 0.5 * total as f32;
                    let by_tag = match e.tag {
                        Tag::Nav | Tag::Aside | Tag::Footer => true,
                        Tag::Header => !in_article[i] && !big,
                        Tag::Form => false,
                        _ => false,
                    };
                    let by_name = !e.hint.main
                        && !matches!(e.tag, Tag::Main | Tag::Article | Tag::Body | Tag::Html)
                        && !big
                        && (e.hint.strong_negative || (e.hint.negative && !e.hint.positive));
                    by_tag || by_name
                }
                Kind::Text(..) => false,
            };
    }

    // Pass 3 (bottom-up): live text, links, commas; block-owned text.
    let mut text_len = vec![0u32; n];
    let mut link_len = vec![0u32; n];
    let mut own_len = vec![0u32; n];
    let mut own_commas = vec![0u32; n];
    let mut own_link = vec![0u32; n];
    for i in (0..n).rev() {
        if dead[i] || boiler[i] {
            continue;
        }
        if let Kind::Text(..) = dom.nodes[i].kind {
            let len = raw_len[i];
            text_len[i] = len;
            let o = owner[i] as usize;
            if in_link[i] {
                link_len[i] = len;
                own_link[o] += len;
            }
            own_len[o] += len - junk[i];
            own_commas[o] += commas[i];
        }
        let p = dom.nodes[i].parent;
        if p != NONE {
            let p = p as usize;
            text_len[p] = text_len[p].saturating_add(text_len[i]);
            link_len[p] = link_len[p].saturating_add(link_len[i]);
        }
    }

    // Readability: each text block gives its score to its ancestors.
    let mut score = vec![0f32; n];
    for i in 0..n {
        let len = own_len[i];
        if len < 25 || dead[i] || boiler[i] {
            continue;
        }
        let s = 1.0 + own_commas[i] as f32 + (len as f32 / 100.0).min(3.0);
        let mut a = dom.nodes[i].parent;
        let mut level = 1;
        while a != NONE && level <= 5 {
            let div = match level {
                1 => 1.0,
                2 => 2.0,
                l => l as f32 * 3.0,
            };
            score[a as usize] += s / div;
            a = dom.nodes[a as usize].parent;
            level += 1;
        }
    }

    // Prose per subtree: what a reader would call running text.
    let mut prose = vec![0u32; n];
    for i in (0..n).rev() {
        let len = own_len[i];
        if len >= 25 && (own_link[i] as f32) < 0.3 * len as f32 {
            prose[i] = prose[i].saturating_add(len);
        }
        let p = dom.nodes[i].parent;
        if p != NONE && !dead[i] && !boiler[i] {
            prose[p as usize] = prose[p as usize].saturating_add(prose[i]);
        }
    }

    Analysis {
        dead,
        boiler,
        text_len,
        link_len,
        score,
        owner,
        prose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ascii_tokens_are_not_prose_but_cjk_is() {
        let url = "https://example.com/a/very/long/path";
        let (len, commas, junk) = measure(&format!("see {url}, now"));
        assert_eq!(
            (len, commas, junk),
            (3 + url.len() as u32 + 1 + 3, 1, url.len() as u32 + 1)
        );
        let (len, _, junk) =
            measure("这是一个没有空格的很长的中文句子用来测试我们的长度计算是否正确");
        assert_eq!((len, junk), (31, 0));
    }

    #[test]
    fn chrome_and_hidden_are_marked() {
        let dom = Dom::parse(
            "<body><nav>menu</nav><div class=cookie-notice>cookies</div><div hidden>secret</div>\
             <div class=has-sidebar><p>A paragraph of real text, long enough to count as prose.</p></div></body>",
        );
        let a = analyze(&dom, true);
        let live: String = (0..dom.nodes.len())
            .filter(|&i| !a.dead[i] && !a.boiler[i])
            .filter_map(|i| match dom.nodes[i].kind {
                Kind::Text(s, e) => Some(dom.text_of(s, e)),
                _ => None,
            })
            .collect();
        assert_eq!(
            live,
            "A paragraph of real text, long enough to count as prose."
        );
        assert!(a.prose[0] > 40);
        // With hidden elements shown, the hidden div is live again.
        let a = analyze(&dom, false);
        assert!(a.text_len[0] as usize >= "secret".len() + 40);
    }
}
