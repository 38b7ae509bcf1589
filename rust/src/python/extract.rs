//! Bindings for `crate::extract`: HTML pages (bytes or str) to main text.
//! Conversion and GIL release only; validation and messages live in
//! `fastllm/data/extract.py`.

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyString, PyTuple};
use rayon::prelude::*;

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

/// The Arrow C data interface's structs (arrow.apache.org/docs/format/CDataInterface.html).
#[repr(C)]
struct ArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut ArrowSchema,
    dictionary: *mut ArrowSchema,
    release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    private_data: *mut c_void,
}

#[repr(C)]
struct ArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut ArrowArray,
    dictionary: *mut ArrowArray,
    release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    private_data: *mut c_void,
}

/// The values of a utf8/binary (or large_) Arrow array, borrowed from its
/// buffers without a copy; None for nulls.
///
/// Safety: the slices live as long as the array's capsule, which the caller
/// keeps alive for as long as it uses them.
unsafe fn arrow_values<'a>(
    schema: &ArrowSchema,
    array: &ArrowArray,
) -> PyResult<Vec<Option<&'a [u8]>>> {
    let format = CStr::from_ptr(schema.format).to_bytes();
    let large = match format {
        b"u" | b"z" => false,
        b"U" | b"Z" => true,
        other => {
            return Err(PyTypeError::new_err(format!(
                "extract_batch: Arrow arrays of type string or binary (or large_) are supported, got format {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    if array.n_buffers != 3 || array.length < 0 || array.offset < 0 {
        return Err(PyValueError::new_err(
            "extract_batch: malformed Arrow array",
        ));
    }
    let n = array.length as usize;
    let off = array.offset as usize;
    let buffers = std::slice::from_raw_parts(array.buffers, 3);
    let validity = buffers[0] as *const u8;
    let data = buffers[2] as *const u8;
    let offset_at = |k: usize| -> usize {
        if large {
            *(buffers[1] as *const i64).add(k) as usize
        } else {
            *(buffers[1] as *const i32).add(k) as usize
        }
    };
    let mut out = Vec::with_capacity(n);
    for i in off..off + n {
        let valid = validity.is_null() || (*validity.add(i / 8) >> (i % 8)) & 1 == 1;
        if !valid {
            out.push(None);
            continue;
        }
        let (a, b) = (offset_at(i), offset_at(i + 1));
        out.push(Some(if b > a {
            std::slice::from_raw_parts(data.add(a), b - a)
        } else {
            &[][..]
        }));
    }
    Ok(out)
}

/// Like `extract_batch`, for one Arrow array (anything with
/// `__arrow_c_array__`: a pyarrow `string`/`binary` Array), read through
/// the Arrow C data interface without copying the pages. Nulls give None.
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
    let pair = array.call_method0("__arrow_c_array__")?;
    let pair = pair.cast::<PyTuple>()?;
    let schema_cap = pair.get_item(0)?;
    let array_cap = pair.get_item(1)?;
    let schema_cap = schema_cap.cast::<PyCapsule>()?;
    let array_cap = array_cap.cast::<PyCapsule>()?;
    let schema = schema_cap
        .pointer_checked(Some(c"arrow_schema"))?
        .cast::<ArrowSchema>();
    let arr = array_cap
        .pointer_checked(Some(c"arrow_array"))?
        .cast::<ArrowArray>();
    // SAFETY: the capsules hold valid structs (the producer's contract) and
    // stay alive, with the buffers they own, until this function returns.
    let values = unsafe { arrow_values(schema.as_ref(), arr.as_ref())? };
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
