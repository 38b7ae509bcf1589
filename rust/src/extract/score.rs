//! Which part of the page is the main content.
//!
//! Three passes over the arena (no recursion):
//! 1. top-down: what is dead (hidden, non-text elements) and what is
//!    boilerplate (navigation, footers, asides, cookie banners, share bars
//!    and whatever the id/class/role names say is chrome);
//! 2. bottom-up: text, link text and commas per element, counting only live,
//!    non-boilerplate text;
//! 3. readability's scoring: every text block of 25+ characters scores
//!    1 + commas + min(len/100, 3) and gives it to its ancestors, less with
//!    each level; an element's score is then scaled by (1 - link density) and
//!    nudged by its tag and names. The best element, moved up when its
//!    parent holds several near-best blocks, plus those of its siblings that
//!    score high enough, is the main content.

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

fn tag_weight(t: Tag) -> f32 {
    match t {
        Tag::Article | Tag::Main => 10.0,
        Tag::Div | Tag::Section => 5.0,
        Tag::Pre | Tag::Td | Tag::Blockquote => 3.0,
        Tag::Form | Tag::Ul | Tag::Ol | Tag::Dl | Tag::Dd | Tag::Dt | Tag::Li => -3.0,
        Tag::H(_) | Tag::Th => -5.0,
        _ => 0.0,
    }
}

/// Final candidate score of element `i`.
fn candidate_score(dom: &Dom, a: &Analysis, i: u32) -> f32 {
    let Some(e) = dom.element(i) else { return 0.0 };
    let base = a.score[i as usize];
    if base <= 0.0 {
        return 0.0;
    }
    let mut w = tag_weight(e.tag);
    if e.hint.positive {
        w += 25.0;
    }
    if e.hint.negative {
        w -= 25.0;
    }
    if e.hint.main {
        w += 10.0;
    }
    (base + w) * (1.0 - a.link_density(i))
}

/// The main content: subtrees to render, in document order.
#[derive(Debug, Default)]
pub struct Choice {
    pub roots: Vec<u32>,
    /// A page made of links (a listing, a front page, a link directory):
    /// link-dense blocks are its content, not chrome to prune.
    pub keep_links: bool,
}

/// The main content. Prose pages get readability's choice; pages where that
/// choice holds a small part of mostly linked text get the listing itself.
pub fn main_content(dom: &Dom, a: &Analysis) -> Choice {
    let roots = prose_content(dom, a);
    let total = a.text_len[0];
    let chosen: u32 = roots.iter().map(|&r| a.text_len[r as usize]).sum();
    let linky = a.link_len[0] as f32 > 0.5 * total as f32;
    if total > 0 && linky && (chosen as f32) < 0.25 * total as f32 {
        return Choice {
            roots: vec![listing_root(dom, a)],
            keep_links: true,
        };
    }
    // Content that is itself mostly links (a table of headlines) keeps them.
    let chosen_links: u32 = roots.iter().map(|&r| a.link_len[r as usize]).sum();
    Choice {
        keep_links: chosen_links as f32 > 0.5 * chosen as f32,
        roots,
    }
}

/// The element that holds a link-made page's content: the `<main>` (or
/// `role=main`) holding the most text if it holds a fair part of the page,
/// else the body, unwrapped while one child holds nearly all of it.
fn listing_root(dom: &Dom, a: &Analysis) -> u32 {
    let total = a.text_len[0];
    let mut best = (0u32, 0u32);
    for i in 0..dom.nodes.len() as u32 {
        if let Some(e) = dom.element(i) {
            let t = a.text_len[i as usize];
            if (e.tag == Tag::Main || e.hint.main) && t > best.1 {
                best = (i, t);
            }
        }
    }
    let mut root = if best.1 as f32 >= 0.3 * total as f32 {
        best.0
    } else {
        0
    };
    loop {
        let t = a.text_len[root as usize];
        let Some(c) = dom
            .children(root)
            .find(|&c| a.text_len[c as usize] as f32 >= 0.9 * t as f32)
        else {
            break;
        };
        if t == 0 {
            break;
        }
        root = c;
    }
    root
}

/// Readability's choice: the best-scoring element, moved up or joined by
/// its siblings as the content continues there. Empty when the page has no
/// live text at all.
fn prose_content(dom: &Dom, a: &Analysis) -> Vec<u32> {
    let n = dom.nodes.len();
    let mut scored: Vec<(f32, u32)> = (0..n as u32)
        .filter(|&i| {
            !a.dead[i as usize]
                && !a.boiler[i as usize]
                && matches!(dom.nodes[i as usize].kind, Kind::Element(_))
                && !matches!(dom.tag(i), Some(Tag::Root | Tag::Html | Tag::Body))
        })
        .map(|i| (candidate_score(dom, a, i), i))
        .filter(|&(s, _)| s > 0.0)
        .collect();
    if scored.is_empty() {
        return if a.text_len[0] > 0 { vec![0] } else { vec![] };
    }
    scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let (top_score, mut top) = scored[0];

    // Several near-best candidates under one ancestor: take the ancestor
    // (readability's "alternative candidate ancestors").
    let near: Vec<u32> = scored[1..scored.len().min(6)]
        .iter()
        .filter(|&&(s, _)| s >= 0.75 * top_score)
        .map(|&(_, i)| i)
        .collect();
    if near.len() >= 3 {
        let mut p = dom.nodes[top as usize].parent;
        while p != NONE && !matches!(dom.tag(p), Some(Tag::Body | Tag::Html | Tag::Root)) {
            let holds = near.iter().filter(|&&c| is_ancestor(dom, p, c)).count();
            if holds >= 3 {
                top = p;
                break;
            }
            p = dom.nodes[p as usize].parent;
        }
    }

    // Climb while the parent scores higher (the content continues there).
    let mut last = candidate_score(dom, a, top);
    let threshold = last / 3.0;
    let mut p = dom.nodes[top as usize].parent;
    while p != NONE && !matches!(dom.tag(p), Some(Tag::Body | Tag::Html | Tag::Root)) {
        let ps = candidate_score(dom, a, p);
        if ps < threshold {
            break;
        }
        if ps > last {
            top = p;
            break;
        }
        last = ps;
        p = dom.nodes[p as usize].parent;
    }
    // An only child stands for its parent.
    loop {
        let p = dom.nodes[top as usize].parent;
        if p == NONE || matches!(dom.tag(p), Some(Tag::Body | Tag::Html | Tag::Root)) {
            break;
        }
        let live_children = dom
            .children(p)
            .filter(|&c| a.text_len[c as usize] > 0)
            .count();
        if live_children != 1 {
            break;
        }
        top = p;
    }

    // Siblings that score well enough, or read like paragraphs, join.
    let top_score = candidate_score(dom, a, top);
    let p = dom.nodes[top as usize].parent;
    if p == NONE {
        return vec![top];
    }
    let bar = (top_score * 0.2).max(10.0);
    let mut roots: Vec<u32> = dom
        .children(p)
        .filter(|&s| {
            if s == top {
                return true;
            }
            let si = s as usize;
            if a.dead[si] || a.boiler[si] || a.text_len[si] == 0 {
                return false;
            }
            if candidate_score(dom, a, s) >= bar {
                return true;
            }
            let len = a.text_len[si];
            let ld = a.link_density(s);
            dom.tag(s) == Some(Tag::P)
                && ((len > 80 && ld < 0.25) || (ld == 0.0 && ends_sentence(dom, s)))
        })
        .collect();

    // Pages built of sections (services, products, landing pages) spread
    // their prose over many blocks: climb while the parent holds much more
    // prose than the choice and is not itself a link farm.
    // Wrappers that add (almost) no prose are passed through.
    let mut cur: u32 = roots.iter().map(|&r| a.prose[r as usize]).sum();
    let mut cur_text: u32 = roots.iter().map(|&r| a.text_len[r as usize]).sum();
    let mut cur_links: u32 = roots.iter().map(|&r| a.link_len[r as usize]).sum();
    let mut p = dom.nodes[roots[0] as usize].parent;
    while p != NONE {
        let pi = p as usize;
        let pp = a.prose[pi] as f32;
        // What widening would add must itself read as text, not as teaser
        // cards whose titles are links.
        let added_text = a.text_len[pi].saturating_sub(cur_text).max(1) as f32;
        let added_links = a.link_len[pi].saturating_sub(cur_links) as f32;
        if pp > CLIMB * cur as f32 && added_links / added_text < ADDED_LINKS_MAX {
            roots = vec![p];
            cur = a.prose[pi];
            cur_text = a.text_len[pi];
            cur_links = a.link_len[pi];
        } else if pp > WRAPPER * cur as f32 {
            break;
        }
        p = dom.nodes[p as usize].parent;
    }
    roots
}

/// Widening may add text with at most this share of links.
const ADDED_LINKS_MAX: f32 = 0.3;

/// A parent with less than this much more prose is a mere wrapper.
const WRAPPER: f32 = 1.1;

/// How much more prose a parent must hold for the choice to widen to it.
const CLIMB: f32 = 1.25;

fn ends_sentence(dom: &Dom, i: u32) -> bool {
    let mut last = None;
    for c in dom.children(i) {
        if let Kind::Text(s, e) = dom.nodes[c as usize].kind {
            last = Some(dom.text_of(s, e));
        }
    }
    last.is_some_and(|t| t.trim_end().ends_with(['.', '!', '?', '。']))
}

fn is_ancestor(dom: &Dom, anc: u32, mut node: u32) -> bool {
    while node != NONE {
        if node == anc {
            return true;
        }
        node = dom.nodes[node as usize].parent;
    }
    false
}
