//! Bindings for `crate::extract`: HTML pages (bytes or str) to main text.
//! Conversion and GIL release only; the batch and its panic policy are in
//! `crate::extract` and `crate::guard`, validation and messages in
//! `fastllm/data/extract.py`.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::PyString;

use std::borrow::Cow;

use super::arrow::{as_text, strings, ArrowArray, ArrowTexts};
use crate::extract::{self, Extracted, Html};
use crate::guard::{self, Doc, Failures};
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

impl Page {
    fn html(&self) -> Html<'_> {
        match self {
            Page::Str(s) => Html::Text(s),
            Page::Bytes(b) => Html::Bytes(b),
        }
    }
}

/// Main text of one HTML page, or None when it has no main content. A
/// panic in the extractor (a bug) raises RuntimeError: there is no batch to
/// drop the page from, and None would pass for "no main content".
#[pyfunction]
#[pyo3(signature = (html, url = None))]
pub(super) fn extract_text(
    py: Python<'_>,
    html: Page,
    url: Option<String>,
) -> PyResult<Option<String>> {
    py.detach(|| guard::per_document(|| extract::extract(html.html(), url.as_deref()).text))
        .map_err(|p| {
            PyRuntimeError::new_err(format!(
                "extract_text: internal error (a bug in the extractor): {}",
                p.message
            ))
        })
}

/// Texts, titles and language hints of the pages as three Arrow string
/// columns (null where a page has none), and `(row, panic message)` of the
/// pages whose extraction panicked (null in all three columns).
fn columns(docs: &[Doc<Extracted>]) -> (ArrowArray, ArrowArray, ArrowArray, Failures) {
    let field = |f: fn(&Extracted) -> &Option<String>| {
        strings(
            docs.iter()
                .map(move |d| d.ok().and_then(|e| f(e).as_deref())),
        )
    };
    (
        field(|e| &e.text),
        field(|e| &e.title),
        field(|e| &e.lang),
        guard::failures(docs),
    )
}

/// Texts, titles and language hints of a batch of pages (a list of str or
/// bytes), extracted on the rayon pool with the GIL released; see
/// `columns` for what comes back.
#[pyfunction]
#[pyo3(signature = (pages, urls = None))]
#[allow(clippy::type_complexity)]
pub(super) fn extract_batch(
    py: Python<'_>,
    pages: Vec<Page>,
    urls: Option<Vec<Option<String>>>,
) -> PyResult<(ArrowArray, ArrowArray, ArrowArray, Failures)> {
    let urls: Vec<Option<&str>> = urls.iter().flatten().map(|u| u.as_deref()).collect();
    Ok(py.detach(|| -> crate::Result<_> {
        let html: Vec<Option<Html<'_>>> = pages.iter().map(|p| Some(p.html())).collect();
        let docs = pool::install(|| extract::extract_batch(&html, &urls))?;
        Ok(columns(&docs))
    })?)
}

/// The urls of `extract_arrow`: a list of str or None, or an Arrow string
/// column read in place like the pages.
pub(super) enum Urls {
    List(Vec<Option<String>>),
    Arrow(ArrowTexts),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Urls {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Some(a) = ArrowTexts::from_py(&obj, "extract_batch: urls")? {
            return Ok(Urls::Arrow(a));
        }
        Ok(Urls::List(obj.extract()?))
    }
}

impl Urls {
    fn rows(&self) -> Vec<Option<Cow<'_, str>>> {
        match self {
            Urls::List(v) => v.iter().map(|u| u.as_deref().map(Cow::Borrowed)).collect(),
            Urls::Arrow(a) => a.rows().into_iter().map(|r| r.map(as_text)).collect(),
        }
    }
}

/// Like `extract_batch`, for an Arrow string/binary column (a pyarrow
/// Array or ChunkedArray, or anything with `__arrow_c_array__` or
/// `__arrow_c_stream__`), read through the Arrow C data interface without
/// copying the pages (see `arrow.rs`); `urls` may be an Arrow string column
/// too. A null page gives nulls.
#[pyfunction]
#[pyo3(signature = (array, urls = None))]
#[allow(clippy::type_complexity)]
pub(super) fn extract_arrow(
    py: Python<'_>,
    array: &Bound<'_, PyAny>,
    urls: Option<Urls>,
) -> PyResult<(ArrowArray, ArrowArray, ArrowArray, Failures)> {
    let Some(pages) = ArrowTexts::from_py(array, "extract_batch: pages")? else {
        return Err(PyTypeError::new_err(
            "extract_batch: pages must be an Arrow array (no __arrow_c_array__ or __arrow_c_stream__)",
        ));
    };
    let values = pages.rows();
    let url_rows = urls.as_ref().map(Urls::rows).unwrap_or_default();
    let urls: Vec<Option<&str>> = url_rows.iter().map(|u| u.as_deref()).collect();
    if !urls.is_empty() && urls.len() != values.len() {
        return Err(PyValueError::new_err(format!(
            "extract_batch: {} urls for {} pages",
            urls.len(),
            values.len()
        )));
    }
    Ok(py.detach(|| -> crate::Result<_> {
        let html: Vec<Option<Html<'_>>> = values.iter().map(|v| v.map(Html::Bytes)).collect();
        let docs = pool::install(|| extract::extract_batch(&html, &urls))?;
        Ok(columns(&docs))
    })?)
}
