//! The one panic policy of the per-document kernels.
//!
//! A panic inside a kernel is a bug on one document's path. It must not
//! kill the batch (a web crawl always holds the page that finds the bug),
//! and it must not let the document through as if the kernel had run on it
//! (PII masking that failed must not hand back the unmasked text). So every
//! kernel the bindings call per document runs each document through
//! [`map_documents`], [`map_documents_init`] or [`fill_rows`] (or
//! [`per_document`]): a panic turns that document into [`Doc::Failed`]
//! (or a blanked row and an entry in the [`Failures`]), which carries no
//! output, and the caller drops it and counts it as [`INTERNAL_ERROR`],
//! naming it in the run's report.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rayon::prelude::*;

/// The drop reason of a document whose kernel panicked.
pub const INTERNAL_ERROR: &str = "internal_error";

/// `(row, panic message)` of every document of a batch whose kernel
/// panicked, in row order.
pub type Failures = Vec<(usize, String)>;

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

/// `f` over every document of a batch in parallel (call it on the pool),
/// each under [`per_document`], with per-thread scratch state from `init`
/// (rayon's `map_init`): for kernels that reuse buffers from one document
/// to the next. `f` must not rely on what the state holds when it starts
/// (after a panic it is as the panic left it). Results are in row order.
pub fn map_documents_init<D, T, S, I, F>(docs: &[D], init: I, f: F) -> Vec<Doc<T>>
where
    D: Sync,
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &D) -> T + Sync + Send,
{
    docs.par_iter()
        .map_init(init, |state, d| match per_document(|| f(state, d)) {
            Ok(t) => Doc::Done(t),
            Err(p) => Doc::Failed(p),
        })
        .collect()
}

/// `f(state, doc, row)` for every document, writing the document's result
/// into its own `width`-wide row of `out` (`docs.len() * width` long), in
/// parallel with per-thread state from `init` (as [`map_documents_init`]),
/// each document under [`per_document`]. For kernels whose output is one
/// fixed-size row per document in one flat array (MinHash signatures): no
/// allocation per document. A failed document's row is filled with `blank`
/// (nothing half-written survives); the failures come back in row order.
pub fn fill_rows<D, T, S, I, F>(
    docs: &[D],
    out: &mut [T],
    width: usize,
    blank: T,
    init: I,
    f: F,
) -> Failures
where
    D: Sync,
    T: Send + Sync + Copy,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &D, &mut [T]) + Sync + Send,
{
    assert!(width > 0, "fill_rows: width must be > 0");
    assert_eq!(
        out.len(),
        docs.len() * width,
        "fill_rows: out is not docs x width"
    );
    out.par_chunks_mut(width)
        .zip(docs.par_iter())
        .enumerate()
        .map_init(init, |state, (i, (row, d))| {
            match per_document(|| f(state, d, &mut *row)) {
                Ok(()) => None,
                Err(p) => {
                    row.fill(blank);
                    Some((i, p.message))
                }
            }
        })
        .flatten()
        .collect()
}

/// The rows of `docs` whose kernel panicked, with the panic messages.
pub fn failures<T>(docs: &[Doc<T>]) -> Failures {
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
    fn scratch_state_survives_a_panicking_document() {
        // A kernel that reuses a buffer: the document after the one that
        // panicked (on the same thread, with the state the panic left)
        // still gets its own result, because the kernel clears it first.
        let docs: Vec<String> = (0..300).map(|i| format!("doc {i}")).collect();
        let out = crate::pool::install(|| {
            map_documents_init(&docs, String::new, |buf, t| {
                buf.clear();
                buf.push_str(t);
                if t == "doc 42" {
                    panic!("half way");
                }
                buf.push('!');
                buf.clone()
            })
        })
        .unwrap();
        assert_eq!(failures(&out), vec![(42, "half way".to_string())]);
        for (i, d) in out.iter().enumerate() {
            if i != 42 {
                assert_eq!(d, &Doc::Done(format!("doc {i}!")));
            }
        }
    }

    #[test]
    fn a_failed_row_is_blanked_and_reported() {
        let docs: Vec<u64> = (0..500).collect();
        let mut out = vec![7u64; docs.len() * 4];
        let failed = crate::pool::install(|| {
            fill_rows(
                &docs,
                &mut out,
                4,
                0,
                || (),
                |_, &d, row| {
                    row[0] = d; // written before the panic: must not survive
                    if d % 200 == 13 {
                        panic!("bad doc {d}");
                    }
                    row.fill(d + 1);
                },
            )
        })
        .unwrap();
        assert_eq!(
            failed,
            vec![
                (13, "bad doc 13".to_string()),
                (213, "bad doc 213".to_string()),
                (413, "bad doc 413".to_string()),
            ]
        );
        for (d, row) in out.chunks(4).enumerate() {
            let want = if d % 200 == 13 { 0 } else { d as u64 + 1 };
            assert_eq!(row, [want; 4], "row {d}");
        }
        // No document, no failures; one row per document.
        let none: [u64; 0] = [];
        assert!(fill_rows(&none, &mut [], 3, 0, || (), |_, _, _| ()).is_empty());
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
