//! Text columns in from Arrow without a copy, result columns out as Arrow.
//!
//! A batch entry point takes [`Texts`]: either a Python list of str (as
//! before) or any object that speaks the Arrow PyCapsule interface — a
//! pyarrow `Array` (`__arrow_c_array__`), a `ChunkedArray` or other stream
//! (`__arrow_c_stream__`) — of type string, large_string, string_view,
//! binary, large_binary or binary_view. The Arrow arrays are imported
//! through the C data interface (`arrow_array::ffi`): the imported arrays
//! own the producer's buffers (its release callback runs when they drop),
//! so rows are `&[u8]` slices into pyarrow's memory, valid with the GIL
//! released. Nothing is copied unless a row is not valid UTF-8, in which
//! case that row alone is decoded with U+FFFD replacements.
//!
//! Results go back the same way: a kernel's string or float column is built
//! here as one Arrow array ([`ArrowArray`]), which pyarrow (or any consumer
//! of the PyCapsule interface) imports without a copy, instead of as a list
//! of Python objects that Python would have to loop over.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::GenericStringBuilder;
use arrow_array::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{ArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, Float64Array, LargeBinaryArray,
    LargeStringArray, OffsetSizeTrait, StringArray, StringViewArray,
};
use arrow_schema::DataType;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyTuple};
use rayon::prelude::*;

/// One imported chunk, seen as bytes whatever its string/binary flavour
/// (string → binary is a change of type tag, not of buffers).
enum Chunk {
    Binary(BinaryArray),
    LargeBinary(LargeBinaryArray),
    View(BinaryViewArray),
}

impl Chunk {
    fn new(array: ArrayRef, what: &str) -> PyResult<Self> {
        let data = array.to_data();
        Ok(match data.data_type() {
            DataType::Utf8 => Chunk::Binary(StringArray::from(data).into()),
            DataType::Binary => Chunk::Binary(BinaryArray::from(data)),
            DataType::LargeUtf8 => Chunk::LargeBinary(LargeStringArray::from(data).into()),
            DataType::LargeBinary => Chunk::LargeBinary(LargeBinaryArray::from(data)),
            DataType::Utf8View => Chunk::View(StringViewArray::from(data).to_binary_view()),
            DataType::BinaryView => Chunk::View(BinaryViewArray::from(data)),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "{what}: expected an Arrow string or binary array, got {other}"
                )))
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Binary(a) => a.len(),
            Chunk::LargeBinary(a) => a.len(),
            Chunk::View(a) => a.len(),
        }
    }

    /// Appends every row (None for a null) to `out`. Offsets and validity
    /// are read relative to the array's own offset, so slices are right.
    fn rows_into<'a>(&'a self, out: &mut Vec<Option<&'a [u8]>>) {
        fn push<'a, A: Array>(
            a: &A,
            value: impl Fn(usize) -> &'a [u8],
            out: &mut Vec<Option<&'a [u8]>>,
        ) {
            match a.nulls() {
                None => out.extend((0..a.len()).map(|i| Some(value(i)))),
                Some(nulls) => {
                    out.extend((0..a.len()).map(|i| nulls.is_valid(i).then(|| value(i))))
                }
            }
        }
        match self {
            Chunk::Binary(a) => push(a, |i| a.value(i), out),
            Chunk::LargeBinary(a) => push(a, |i| a.value(i), out),
            Chunk::View(a) => push(a, |i| a.value(i), out),
        }
    }
}

/// A string/binary column imported from Arrow, possibly in chunks.
pub(super) struct ArrowTexts {
    chunks: Vec<Chunk>,
}

fn arrow_err(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: cannot import the Arrow data: {e}"))
}

impl ArrowTexts {
    /// Imports `obj` when it has `__arrow_c_array__` or `__arrow_c_stream__`;
    /// Ok(None) when it has neither. `what` names the argument in errors.
    pub(super) fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<Self>> {
        let arrays: Vec<ArrayRef> = if obj.hasattr("__arrow_c_array__")? {
            let pair = obj.call_method0("__arrow_c_array__")?;
            let pair = pair.cast::<PyTuple>()?;
            let schema_cap = pair.get_item(0)?;
            let array_cap = pair.get_item(1)?;
            let schema = schema_cap
                .cast::<PyCapsule>()?
                .pointer_checked(Some(c"arrow_schema"))?
                .cast::<FFI_ArrowSchema>();
            let array = array_cap
                .cast::<PyCapsule>()?
                .pointer_checked(Some(c"arrow_array"))?
                .cast::<FFI_ArrowArray>();
            // SAFETY: the capsules hold valid C data interface structs (the
            // producer's contract). `from_raw` moves the array out and
            // leaves a released one behind, so the capsule's destructor
            // does not release it a second time; the schema is only read
            // and the capsule releases it.
            let data = unsafe {
                let array = FFI_ArrowArray::from_raw(array.as_ptr());
                from_ffi(array, schema.as_ref())
            }
            .map_err(|e| arrow_err(what, e))?;
            vec![arrow_array::make_array(data)]
        } else if obj.hasattr("__arrow_c_stream__")? {
            let cap = obj.call_method0("__arrow_c_stream__")?;
            let stream = cap
                .cast::<PyCapsule>()?
                .pointer_checked(Some(c"arrow_array_stream"))?
                .cast::<FFI_ArrowArrayStream>();
            // SAFETY: as above; the stream is moved out of the capsule.
            let reader = unsafe { ArrayStreamReader::from_raw(stream.as_ptr()) }
                .map_err(|e| arrow_err(what, e))?;
            reader
                .collect::<Result<_, _>>()
                .map_err(|e| arrow_err(what, e))?
        } else {
            return Ok(None);
        };
        let chunks = arrays
            .into_iter()
            .map(|a| Chunk::new(a, what))
            .collect::<PyResult<_>>()?;
        Ok(Some(ArrowTexts { chunks }))
    }

    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    /// Every row across the chunks, borrowed from the Arrow buffers; None
    /// for a null. One small vector of slices, not a copy of the data.
    pub(super) fn rows(&self) -> Vec<Option<&[u8]>> {
        let mut out = Vec::with_capacity(self.len());
        for c in &self.chunks {
            c.rows_into(&mut out);
        }
        out
    }
}

/// A row as text: borrowed when valid UTF-8 (the normal case), otherwise
/// a copy with U+FFFD for each invalid sequence.
pub(super) fn as_text(row: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(row)
}

/// The texts argument of a batch kernel: a list of str (nulls already
/// taken out by the Python wrapper) or an Arrow column.
pub(super) enum Texts {
    List(Vec<PyBackedStr>),
    Arrow(ArrowTexts),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Texts {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Some(a) = ArrowTexts::from_py(&obj, "texts")? {
            return Ok(Texts::Arrow(a));
        }
        Ok(Texts::List(obj.extract()?))
    }
}

impl Texts {
    /// Every row as text, nulls as empty documents, for kernels that take a
    /// slice of texts. Borrowed except for rows that are not valid UTF-8.
    pub(super) fn strs(&self) -> Vec<Cow<'_, str>> {
        match self {
            Texts::List(v) => v.iter().map(|t| Cow::Borrowed(&**t)).collect(),
            Texts::Arrow(a) => a
                .rows()
                .par_iter()
                .map(|r| r.map_or(Cow::Borrowed(""), as_text))
                .collect(),
        }
    }
}

impl Texts {
    /// Every row as text (None for a null), for the plain-Rust batch
    /// functions; borrowed except for rows that are not valid UTF-8, which
    /// are decoded in parallel.
    pub(super) fn rows_str(&self) -> Vec<Option<Cow<'_, str>>> {
        match self {
            Texts::List(v) => v.iter().map(|t| Some(Cow::Borrowed(&**t))).collect(),
            Texts::Arrow(a) => a.rows().par_iter().map(|r| r.map(as_text)).collect(),
        }
    }
}

/// One Arrow array built by a kernel, on its way to Python: it implements
/// `__arrow_c_array__`, so `pyarrow.array(obj)` imports it without a copy.
#[pyclass(frozen, module = "fastllm._core")]
pub(super) struct ArrowArray {
    array: ArrayRef,
}

#[pymethods]
impl ArrowArray {
    /// The (schema, array) capsules of the Arrow C data interface. A
    /// `requested_schema` is not honoured (the array is exported as it is).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let (array, schema) = to_ffi(&self.array.to_data())
            .map_err(|e| PyValueError::new_err(format!("cannot export an Arrow array: {e}")))?;
        // Each capsule owns its struct: when the consumer moves the array
        // out, the struct left behind is released, and dropping it is a no-op.
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(py, array, c"arrow_array")?,
        ))
    }

    fn __len__(&self) -> usize {
        self.array.len()
    }
}

fn string_array<O: OffsetSizeTrait>(
    n: usize,
    bytes: usize,
    values: impl Iterator<Item = Option<impl AsRef<str>>>,
) -> ArrayRef {
    let mut b = GenericStringBuilder::<O>::with_capacity(n, bytes);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// A string column from `values` (None is a null): `string` when its bytes
/// fit 32-bit offsets, else `large_string`. `values` is walked twice (once
/// to size the buffers, so that they are allocated once).
pub(super) fn strings<S: AsRef<str>>(
    values: impl Iterator<Item = Option<S>> + Clone,
) -> ArrowArray {
    let (n, bytes) = values.clone().fold((0usize, 0usize), |(n, b), v| {
        (n + 1, b + v.as_ref().map_or(0, |s| s.as_ref().len()))
    });
    let array = if bytes <= i32::MAX as usize {
        string_array::<i32>(n, bytes, values)
    } else {
        string_array::<i64>(n, bytes, values)
    };
    ArrowArray { array }
}

/// A float64 column; its buffer is `values` itself, moved, not copied.
pub(super) fn floats(values: Vec<f64>) -> ArrowArray {
    ArrowArray {
        array: Arc::new(Float64Array::from(values)),
    }
}
