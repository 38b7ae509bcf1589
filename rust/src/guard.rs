//! The one panic policy of the per-document kernels.
//!
//! A panic inside a kernel is a bug on one document's path. It must not
//! kill the batch (a web crawl always holds the page that finds the bug),
//! and it must not let the document through as if the kernel had run on it
//! (PII masking that failed must not hand back the unmasked text). So every
//! kernel the bindings call per document runs each document through
//! [`map_documents`] (or [`per_document`]): a panic turns that document
//! into [`Doc::Failed`], which carries no text, and the caller drops it
//! and counts it as [`INTERNAL_ERROR`], naming it in the run's report.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rayon::prelude::*;

/// The drop reason of a document whose kernel panicked.
pub const INTERNAL_ERROR: &str = "internal_error";

/// A kernel panicked on one document; `message` is the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    pub message: String,
}

/// One document's outcome in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<T> {
    /// A null row: nothing to run the kernel on.
    Null,
    /// The kernel's result.
    Done(T),
    /// The kernel panicked: the document is dropped. Deliberately holds no
    /// output, so that no text can leave a failed kernel.
    Failed(Panicked),
}

impl<T> Doc<T> {
    /// The result, or None for a null or failed document.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Doc::Done(t) => Some(t),
            _ => None,
        }
    }
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs `f` for one document; a panic becomes `Err(Panicked)`.
///
/// The default panic hook still prints the panic (with its location) to
/// stderr, which is what a bug report needs.
pub fn per_document<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    // AssertUnwindSafe: the kernels share only immutable state (configs,
    // lazily built tables behind OnceLock, which poisons nothing), so a
    // panic cannot leave anything half-updated for the next document.
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panicked {
        message: message(p.as_ref()),
    })
}

/// `f` over every document of a batch in parallel (call it on the pool),
/// each under [`per_document`]; a None row is [`Doc::Null`]. Results are
/// in row order.
pub fn map_documents<D, T, F>(docs: &[Option<D>], f: F) -> Vec<Doc<T>>
where
    D: Sync,
    T: Send,
    F: Fn(&D) -> T + Sync,
{
    docs.par_iter()
        .map(|d| match d {
            None => Doc::Null,
            Some(d) => match per_document(|| f(d)) {
                Ok(t) => Doc::Done(t),
                Err(p) => Doc::Failed(p),
            },
        })
        .collect()
}

/// The rows of `docs` whose kernel panicked, with the panic messages.
pub fn failures<T>(docs: &[Doc<T>]) -> Vec<(usize, String)> {
    docs.iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Doc::Failed(p) => Some((i, p.message.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The panics below are injected: their messages on stderr are expected.

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let r: Result<(), _> = per_document(|| panic!("bad offset {}", 7));
        assert_eq!(
            r,
            Err(Panicked {
                message: "bad offset 7".into()
            })
        );
        let r: Result<(), _> = per_document(|| panic!("static"));
        assert_eq!(r.unwrap_err().message, "static");
        assert_eq!(per_document(|| 3), Ok(3));
    }

    #[test]
    fn one_panicking_document_fails_alone() {
        let docs: Vec<Option<String>> = (0..200)
            .map(|i| (i != 3).then(|| format!("doc {i}")))
            .collect();
        let out = crate::pool::install(|| {
            map_documents(&docs, |t| {
                if t == "doc 117" {
                    panic!("injected");
                }
                t.to_uppercase()
            })
        })
        .unwrap();
        assert_eq!(out.len(), 200);
        assert_eq!(out[3], Doc::Null);
        assert_eq!(
            out[117],
            Doc::Failed(Panicked {
                message: "injected".into()
            })
        );
        assert_eq!(out[0].ok().map(String::as_str), Some("DOC 0"));
        assert_eq!(
            out.iter().filter(|d| matches!(d, Doc::Done(_))).count(),
            198
        );
        assert_eq!(failures(&out), vec![(117, "injected".to_string())]);
    }

    #[test]
    fn a_failed_masking_hands_back_no_text() {
        // The PII path's contract, with a panicking masker standing in for a
        // bug in the real one: the failed row yields no string at all.
        let docs = [Some("mail a@b.co"), Some("mail c@d.co")];
        let out = map_documents(&docs, |t| {
            if t.contains("c@d") {
                panic!("masker bug");
            }
            t.replace("a@b.co", "<EMAIL>")
        });
        let texts: Vec<Option<&str>> = out.iter().map(|d| d.ok().map(String::as_str)).collect();
        assert_eq!(texts, vec![Some("mail <EMAIL>"), None]);
        assert!(matches!(out[1], Doc::Failed(_)));
    }
}
