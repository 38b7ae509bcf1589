//! Bindings for `crate::extract`: HTML pages (bytes or str) to main text.
//! Conversion and GIL release only; validation and messages live in
//! `fastllm/data/extract.py`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::PyString;
use rayon::prelude::*;

use super::arrow::ArrowTexts;
use crate::extract::{self, Extracted};
use crate::pool;

/// One page as Python gave it: text is parsed as is, bytes are decoded first.
pub(super) enum Page {
    Str(PyBackedStr),
    Bytes(PyBackedBytes),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Page {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.extract::<PyBackedStr>() {
            return Ok(Page::Str(s));
        }
        if obj.is_instance_of::<PyString>() {
            // A str that is not valid Unicode (lone surrogates) cannot be
            // borrowed as UTF-8: encode it with replacement characters
            // instead of failing the whole batch.
            let bytes = obj.call_method1("encode", ("utf-8", "replace"))?;
            return Ok(Page::Bytes(bytes.extract::<PyBackedBytes>()?));
        }
        Ok(Page::Bytes(obj.extract::<PyBackedBytes>()?))
    }
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

/// Like `extract_batch`, for an Arrow string/binary column (a pyarrow
/// Array or ChunkedArray, or anything with `__arrow_c_array__` or
/// `__arrow_c_stream__`), read through the Arrow C data interface without
/// copying the pages (see `arrow.rs`). Nulls give None.
#[pyfunction]
#[pyo3(signature = (array, urls = None))]
#[allow(clippy::type_complexity)]
pub(super) fn extract_arrow(
    py: Python<'_>,
    array: &Bound<'_, PyAny>,
    urls: Option<Vec<Option<String>>>,
) -> PyResult<(
    Vec<Option<String>>,
    Vec<Option<String>>,
    Vec<Option<String>>,
)> {
    let Some(pages) = ArrowTexts::from_py(array, "extract_batch: pages")? else {
        return Err(PyTypeError::new_err(
            "extract_batch: pages must be an Arrow array (no __arrow_c_array__ or __arrow_c_stream__)",
        ));
    };
    let values = pages.rows();
    let urls = urls.unwrap_or_default();
    if !urls.is_empty() && urls.len() != values.len() {
        return Err(PyValueError::new_err(format!(
            "extract_batch: {} urls for {} pages",
            urls.len(),
            values.len()
        )));
    }
    let results: Vec<Option<Extracted>> = py.detach(|| {
        pool::install(|| {
            values
                .par_iter()
                .enumerate()
                .map(|(i, v)| {
                    v.map(|bytes| {
                        let url = urls.get(i).and_then(|u| u.as_deref());
                        catch_unwind(AssertUnwindSafe(|| extract::extract_bytes(bytes, url)))
                            .unwrap_or_default()
                    })
                })
                .collect()
        })
    })?;
    let mut texts = Vec::with_capacity(results.len());
    let mut titles = Vec::with_capacity(results.len());
    let mut langs = Vec::with_capacity(results.len());
    for r in results {
        let r = r.unwrap_or_default();
        texts.push(r.text);
        titles.push(r.title);
        langs.push(r.lang);
    }
    Ok((texts, titles, langs))
}
