//! The quality-filter chain: which families run, in which order, and what
//! each one sees.
//!
//! FineWeb's pipeline order (datatrove's `process_common_crawl_dump`):
//! Gopher repetition, Gopher quality, C4, FineWeb. The first family that
//! drops a document decides its reason; the later ones do not run. C4 also
//! edits what it keeps (it removes lines), and FineWeb, which comes after
//! it, judges C4's output rather than the original text, as in datatrove,
//! where C4 rewrites `doc.text` before the next filter reads it.

use super::c4::C4;
use super::fineweb::FineWeb;
use super::gopher_quality::GopherQuality;
use super::gopher_repetition::GopherRepetition;
use super::Reason;
use crate::guard::{self, Doc};

/// The families of one run; None leaves a family out.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub gopher_repetition: Option<GopherRepetition>,
    pub gopher_quality: Option<GopherQuality>,
    pub c4: Option<C4>,
    pub fineweb: Option<FineWeb>,
}

/// What the chain decides for one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Kept as it is (C4 did not run).
    Keep,
    /// Kept after C4 ran: the text with C4's dropped lines removed (equal to
    /// the input when C4 removed nothing).
    Edited(String),
    /// Dropped, with the reason string of the rule that dropped it.
    Drop(Reason),
}

impl Chain {
    /// The chain's verdict on one text.
    pub fn run(&self, text: &str) -> Verdict {
        if let Some(r) = self.gopher_repetition.as_ref().and_then(|f| f.check(text)) {
            return Verdict::Drop(r);
        }
        if let Some(r) = self.gopher_quality.as_ref().and_then(|f| f.check(text)) {
            return Verdict::Drop(r);
        }
        let edited = match &self.c4 {
            Some(f) => match f.apply(text) {
                Ok(t) => Some(t),
                Err(r) => return Verdict::Drop(r),
            },
            None => None,
        };
        let current = edited.as_deref().unwrap_or(text);
        if let Some(r) = self.fineweb.as_ref().and_then(|f| f.check(current)) {
            return Verdict::Drop(r);
        }
        edited.map_or(Verdict::Keep, Verdict::Edited)
    }

    /// The verdict on every document of a batch, in parallel (call it on the
    /// pool), under the one panic policy (`crate::guard`): a document whose
    /// filters panic comes back as [`Doc::Failed`].
    pub fn run_batch<D: AsRef<str> + Sync>(&self, docs: &[Option<D>]) -> Vec<Doc<Verdict>> {
        guard::map_documents(docs, |t| self.run(t.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Chain {
        Chain {
            gopher_repetition: Some(GopherRepetition::default()),
            gopher_quality: Some(GopherQuality::default()),
            c4: Some(C4::default()),
            fineweb: Some(FineWeb::default()),
        }
    }

    fn only(f: impl FnOnce(&mut Chain)) -> Chain {
        let mut c = Chain::default();
        f(&mut c);
        c
    }

    /// Five prose sentences, one per line, among fifteen short navigation
    /// lines that C4 removes (no terminal punctuation, under three words).
    fn prose_in_menus() -> (String, String) {
        let prose = [
            "The committee met on Tuesday to discuss the budget for the coming year.",
            "Several members raised concerns about the cost of the new library building.",
            "The chair proposed that the vote be postponed until the next meeting.",
            "After a long debate, the members agreed to gather more information first.",
            "The meeting ended shortly after nine o'clock with a short statement.",
        ];
        let mut lines = Vec::new();
        for (i, p) in prose.iter().enumerate() {
            lines.push(p.to_string());
            for k in 0..3 {
                lines.push(format!("Menu {}", i * 3 + k));
            }
        }
        (lines.join("\n"), prose.join("\n"))
    }

    #[test]
    fn no_family_keeps_everything_unchanged() {
        assert_eq!(Chain::default().run("anything"), Verdict::Keep);
        assert_eq!(Chain::default().run(""), Verdict::Keep);
    }

    #[test]
    fn repetition_decides_before_quality() {
        let text = "word\nword\nword";
        let rep = GopherRepetition::default().check(text);
        let qual = GopherQuality::default().check(text);
        assert!(rep.is_some() && qual.is_some() && rep != qual);
        assert_eq!(all().run(text), Verdict::Drop(rep.unwrap()));
        let no_rep = only(|c| c.gopher_quality = Some(GopherQuality::default()));
        assert_eq!(no_rep.run(text), Verdict::Drop(qual.unwrap()));
    }

    #[test]
    fn c4_edits_what_it_keeps_and_fineweb_judges_the_edit() {
        let (page, prose) = prose_in_menus();
        // FineWeb alone drops the page for its short menu lines ...
        let fineweb = only(|c| c.fineweb = Some(FineWeb::default()));
        assert_eq!(fineweb.run(&page), Verdict::Drop("short_line_ratio".into()));
        // ... but after C4 removed them it sees only the prose, and keeps it.
        let c4_fineweb = only(|c| {
            c.c4 = Some(C4::default());
            c.fineweb = Some(FineWeb::default());
        });
        assert_eq!(c4_fineweb.run(&page), Verdict::Edited(prose.clone()));
        // C4 alone: the same edit; unchanged text still comes back as Edited.
        let c4 = only(|c| c.c4 = Some(C4::default()));
        assert_eq!(c4.run(&page), Verdict::Edited(prose.clone()));
        assert_eq!(c4.run(&prose), Verdict::Edited(prose.clone()));
    }

    #[test]
    fn c4_drops_before_fineweb_runs() {
        let text = "lorem ipsum dolor sit amet.";
        let c4_fineweb = only(|c| {
            c.c4 = Some(C4::default());
            c.fineweb = Some(FineWeb::default());
        });
        let Verdict::Drop(r) = c4_fineweb.run(text) else {
            panic!("kept")
        };
        assert_eq!(Some(r), C4::default().apply(text).err());
    }

    #[test]
    fn batch_keeps_row_order_and_nulls() {
        let (page, prose) = prose_in_menus();
        let docs = [Some(page.as_str()), None, Some("word\nword\nword")];
        let c4_fineweb = only(|c| {
            c.c4 = Some(C4::default());
            c.fineweb = Some(FineWeb::default());
        });
        let out = crate::pool::install(|| c4_fineweb.run_batch(&docs)).unwrap();
        assert_eq!(out[0], Doc::Done(Verdict::Edited(prose)));
        assert_eq!(out[1], Doc::Null);
        assert!(matches!(out[2], Doc::Done(Verdict::Drop(_))));
    }
}
