//! Which subtrees are the main content, from `score::Analysis`.
//!
//! Readability's choice first: the best-scoring element (score scaled by
//! 1 - link density, nudged by tag and names), moved up when its parent
//! holds several near-best candidates or scores higher, plus those of its
//! siblings that score high enough. Then two rules that make it work beyond
//! articles: the choice widens to an ancestor holding much more prose (pages
//! built of sections: services, products, documentation), and a page whose
//! choice is a small part of mostly linked text is a listing whose content
//! is the links themselves.

use super::dom::{Dom, Kind, NONE};
use super::score::Analysis;
use super::tags::Tag;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::score::analyze;

    fn text_of(dom: &Dom, c: &Choice) -> String {
        crate::extract::render::render(dom, &analyze(dom, true), c)
    }

    #[test]
    fn a_table_of_headlines_is_a_listing_and_keeps_its_links() {
        let mut html = String::from("<body><table>");
        for i in 0..30 {
            html.push_str(&format!("<tr><td>{i}.</td><td><a href=/s/{i}>Headline number {i} about things</a> (example.com)</td></tr>"));
        }
        html.push_str("</table></body>");
        let dom = Dom::parse(&html);
        let a = analyze(&dom, true);
        let c = main_content(&dom, &a);
        assert!(c.keep_links);
        let t = text_of(&dom, &c);
        assert!(t.contains("Headline number 0 about things"), "{t}");
        assert!(t.contains("Headline number 29 about things"), "{t}");
    }

    #[test]
    fn sections_of_prose_are_all_kept() {
        let section = |h: &str| {
            format!(
                "<section><div><div><h2>{h}</h2><p>We build things for clients, with care, on time, and within \
                 budget, as we have for twenty years.</p></div></div></section>"
            )
        };
        let html = format!(
            "<body><nav><a href=/>Home</a></nav><main>{}{}{}</main></body>",
            section("Design"),
            section("Build"),
            section("Support")
        );
        let dom = Dom::parse(&html);
        let c = main_content(&dom, &analyze(&dom, true));
        let t = text_of(&dom, &c);
        for h in ["Design", "Build", "Support"] {
            assert!(t.contains(h), "{h} missing from {t}");
        }
        assert!(!t.contains("Home"));
    }
}
