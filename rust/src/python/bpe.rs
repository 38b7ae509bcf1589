//! Bindings for the byte-level BPE (`fastllm.Tokenizer` wraps `Bpe`). The
//! batch encoders return their failures (`crate::guard`) beside the ids.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyBytes;

use super::arrow::Texts;
use crate::bpe::hf;
use crate::bpe::model::{Bpe, SpecialMode};
use crate::bpe::tiktoken;
use crate::error::{Error, Result};
use crate::guard::{self, Doc, Failures};
use crate::pool;

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn mode_of(mode: &str) -> Result<SpecialMode> {
    match mode {
        "reject" => Ok(SpecialMode::Reject),
        "allow" => Ok(SpecialMode::Allow),
        "ignore" => Ok(SpecialMode::Ignore),
        _ => Err(Error::invalid(format!(
            "special mode must be \"reject\", \"allow\" or \"ignore\", got {mode:?}"
        ))),
    }
}

/// Flat ids and per-text offsets, as numpy arrays, and the failures.
type IdsAndOffsets<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<i64>>,
    Failures,
);

/// A byte-level BPE model: vocabulary, merges, special tokens, pattern.
#[pyclass(module = "fastllm._core", name = "Bpe", frozen)]
pub struct PyBpe {
    inner: Arc<Bpe>,
}

impl PyBpe {
    /// Each text's ids (none for a null, and none for a text whose encoding
    /// panicked) and the failures, `(row, panic message)`; a special-token
    /// error fails the call (the first in row order).
    fn encode_many(
        &self,
        py: Python<'_>,
        texts: &Texts,
        mode: &str,
        allowed: &[bool],
    ) -> PyResult<(Vec<Vec<u32>>, Failures)> {
        let mode = mode_of(mode)?;
        let bpe = &self.inner;
        let out = py.detach(|| -> Result<_> {
            let docs = pool::install(|| bpe.encode_batch(&texts.rows_str(), mode, allowed))?;
            let failed = guard::failures(&docs);
            let mut ids = Vec::with_capacity(docs.len());
            for d in docs {
                ids.push(match d {
                    Doc::Done(r) => r?,
                    Doc::Null | Doc::Failed(_) => Vec::new(),
                });
            }
            Ok((ids, failed))
        })?;
        Ok(out)
    }
}

#[pymethods]
impl PyBpe {
    /// Parse a Hugging Face tokenizer.json document (a str).
    #[staticmethod]
    fn from_hf_json(py: Python<'_>, text: PyBackedStr) -> PyResult<Self> {
        let bpe = py.detach(|| hf::from_json(&text))?;
        Ok(Self {
            inner: Arc::new(bpe),
        })
    }

    /// Read a Hugging Face tokenizer.json file.
    #[staticmethod]
    fn from_hf_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let bpe = py.detach(|| -> Result<Bpe> {
            let data = read(&path)?;
            let text = std::str::from_utf8(&data).map_err(|e| {
                Error::format(path.display().to_string(), format!("not UTF-8: {e}"))
            })?;
            hf::from_json(text).map_err(|e| match e {
                Error::Format { reason, .. } => Error::format(path.display().to_string(), reason),
                other => other,
            })
        })?;
        Ok(Self {
            inner: Arc::new(bpe),
        })
    }

    /// Read a tiktoken ranks file with the given split pattern and specials.
    #[staticmethod]
    fn from_tiktoken_file(
        py: Python<'_>,
        path: PathBuf,
        pattern: String,
        specials: Vec<(String, u32)>,
    ) -> PyResult<Self> {
        let bpe = py.detach(|| -> Result<Bpe> {
            let data = read(&path)?;
            let ranks = tiktoken::parse_ranks(&data, &path.display().to_string())?;
            Bpe::from_ranks(ranks, specials, &pattern)
        })?;
        Ok(Self {
            inner: Arc::new(bpe),
        })
    }

    /// Build from token bytes with ids, merges in priority order (HF rules).
    #[staticmethod]
    #[pyo3(signature = (vocab, merges, specials, pattern, ignore_merges = false))]
    fn from_merges(
        py: Python<'_>,
        vocab: Vec<(Vec<u8>, u32)>,
        merges: Vec<(Vec<u8>, Vec<u8>)>,
        specials: Vec<(String, u32)>,
        pattern: String,
        ignore_merges: bool,
    ) -> PyResult<Self> {
        let bpe =
            py.detach(|| Bpe::from_merges(vocab, &merges, specials, &pattern, ignore_merges))?;
        Ok(Self {
            inner: Arc::new(bpe),
        })
    }

    /// The model as a tokenizer.json document.
    fn to_hf_json(&self, py: Python<'_>) -> String {
        py.detach(|| hf::to_json(&self.inner))
    }

    /// Encode one text. `mode`: what special-token text does ("reject" unless
    /// listed in `allowed`, "allow", or "ignore" = ordinary text). A panic
    /// in the encoder (a bug) raises RuntimeError: there is no batch to
    /// drop the text from.
    fn encode(
        &self,
        py: Python<'_>,
        text: PyBackedStr,
        mode: &str,
        allowed: Vec<bool>,
    ) -> PyResult<Vec<u32>> {
        let mode = mode_of(mode)?;
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        py.detach(|| {
            guard::per_document(|| self.inner.encode_into(&text, mode, &allowed, &mut ids))
        })
        .map_err(|p| {
            PyRuntimeError::new_err(format!(
                "encode: internal error (a bug in the tokenizer): {}",
                p.message
            ))
        })??;
        Ok(ids)
    }

    /// Encode many texts (a list of str or an Arrow string/binary column)
    /// in parallel on the fastllm thread pool; the ids of each text and the
    /// failures, `(row, panic message)` (no ids for those texts).
    fn encode_batch(
        &self,
        py: Python<'_>,
        texts: Texts,
        mode: &str,
        allowed: Vec<bool>,
    ) -> PyResult<(Vec<Vec<u32>>, Failures)> {
        self.encode_many(py, &texts, mode, &allowed)
    }

    /// Encode many texts into one flat uint32 array plus int64 offsets
    /// (len(texts) + 1): text i is ids[offsets[i]:offsets[i+1]]; and the
    /// failures, `(row, panic message)`, whose texts have no ids.
    fn encode_to_numpy<'py>(
        &self,
        py: Python<'py>,
        texts: Texts,
        mode: &str,
        allowed: Vec<bool>,
    ) -> PyResult<IdsAndOffsets<'py>> {
        let (parts, failed) = self.encode_many(py, &texts, mode, &allowed)?;
        let (flat, offsets) = py.detach(|| {
            let total: usize = parts.iter().map(Vec::len).sum();
            let mut flat = Vec::with_capacity(total);
            let mut offsets = Vec::with_capacity(parts.len() + 1);
            offsets.push(0i64);
            for p in &parts {
                flat.extend_from_slice(p);
                offsets.push(flat.len() as i64);
            }
            (flat, offsets)
        });
        Ok((
            PyArray1::from_vec(py, flat),
            PyArray1::from_vec(py, offsets),
            failed,
        ))
    }

    /// The bytes of `ids` concatenated; an unknown id is a ValueError.
    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py.detach(|| -> Result<Vec<u8>> {
            let mut checked = Vec::with_capacity(ids.len());
            for id in ids {
                if id < 0 || id > u32::MAX as i64 {
                    return Err(Error::invalid(format!(
                        "token id {id} is not in the vocabulary (size {})",
                        self.inner.vocab_size()
                    )));
                }
                checked.push(id as u32);
            }
            self.inner.decode_bytes(&checked)
        })?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The bytes of one token (a special token's text), or None.
    fn token_bytes<'py>(&self, py: Python<'py>, id: i64) -> Option<Bound<'py, PyBytes>> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.inner.token_bytes(id))
            .map(|b| PyBytes::new(py, b))
    }

    /// The id of the ordinary token with these bytes, or None.
    fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.inner.token_id(bytes)
    }

    /// Merges in priority order, as token id pairs.
    fn merges(&self) -> Vec<(u32, u32)> {
        self.inner.merges().to_vec()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn pattern(&self) -> &str {
        self.inner.pattern()
    }

    #[getter]
    fn specials(&self) -> Vec<(String, u32)> {
        self.inner.specials().to_vec()
    }
}
