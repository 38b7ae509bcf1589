//! Bindings for `crate::extract`: HTML pages (bytes or str) to main text.
//! Conversion and GIL release only; validation and messages live in
//! `fastllm/data/extract.py`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use rayon::prelude::*;

use crate::extract::{self, Extracted};
use crate::pool;

/// One page as Python gave it: text is parsed as is, bytes are decoded first.
#[derive(FromPyObject)]
pub(super) enum Page {
    Str(PyBackedStr),
    Bytes(PyBackedBytes),
}

/// Extracts one page. A panic (a bug, never expected) becomes "no content"
/// rather than an exception that would kill a whole batch.
fn run(page: &Page, url: Option<&str>) -> Extracted {
    catch_unwind(AssertUnwindSafe(|| match page {
        Page::Str(s) => extract::extract_str(s),
        Page::Bytes(b) => extract::extract_bytes(b, url),
    }))
    .unwrap_or_default()
}

/// Main text of one HTML page, or None when it has no main content.
#[pyfunction]
#[pyo3(signature = (html, url = None))]
pub(super) fn extract_text(py: Python<'_>, html: Page, url: Option<String>) -> Option<String> {
    py.detach(|| run(&html, url.as_deref()).text)
}

/// Texts, titles and language hints of a batch of pages, extracted on the
/// rayon pool with the GIL released.
#[pyfunction]
#[pyo3(signature = (pages, urls = None))]
#[allow(clippy::type_complexity)]
pub(super) fn extract_batch(
    py: Python<'_>,
    pages: Vec<Page>,
    urls: Option<Vec<Option<String>>>,
) -> PyResult<(
    Vec<Option<String>>,
    Vec<Option<String>>,
    Vec<Option<String>>,
)> {
    let urls = urls.unwrap_or_default();
    let results: Vec<Extracted> = py.detach(|| {
        pool::install(|| {
            pages
                .par_iter()
                .enumerate()
                .map(|(i, p)| run(p, urls.get(i).and_then(|u| u.as_deref())))
                .collect()
        })
    })?;
    let mut texts = Vec::with_capacity(results.len());
    let mut titles = Vec::with_capacity(results.len());
    let mut langs = Vec::with_capacity(results.len());
    for r in results {
        texts.push(r.text);
        titles.push(r.title);
        langs.push(r.lang);
    }
    Ok((texts, titles, langs))
}
