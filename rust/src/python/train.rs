//! `BpeTrainer`: the Python face of `bpe::train::Trainer`. Converts types,
//! releases the GIL around the work, and calls the progress callback with
//! the GIL re-acquired only at each report (about every 1% of the merges).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyBytes;

use crate::bpe::train::{TrainConfig, Trainer};

/// Streaming byte-level BPE trainer, merge for merge equal to Hugging Face
/// `BpeTrainer` with a `Split(pattern)` + `ByteLevel` pre-tokenizer and the
/// full byte alphabet. `feed` batches of text, then `finish` once.
#[pyclass(module = "fastllm._core")]
pub struct BpeTrainer {
    inner: Option<Trainer>,
}

fn finished() -> PyErr {
    PyValueError::new_err("BpeTrainer.finish() was already called")
}

impl BpeTrainer {
    fn trainer(&mut self) -> PyResult<&mut Trainer> {
        self.inner.as_mut().ok_or_else(finished)
    }
}

#[pymethods]
impl BpeTrainer {
    #[new]
    #[pyo3(signature = (pattern, vocab_size, min_frequency = 0, special_tokens = Vec::new()))]
    fn new(
        pattern: String,
        vocab_size: usize,
        min_frequency: u64,
        special_tokens: Vec<String>,
    ) -> PyResult<Self> {
        let t = Trainer::new(TrainConfig {
            pattern,
            vocab_size,
            min_frequency,
            special_tokens,
        })?;
        Ok(Self { inner: Some(t) })
    }

    /// Split `texts` and count their pieces (GIL released, all threads).
    fn feed(&mut self, py: Python<'_>, texts: Vec<PyBackedStr>) -> PyResult<()> {
        let trainer = self.trainer()?;
        py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(|s| &**s).collect();
            trainer.feed(&refs)
        })?;
        Ok(())
    }

    /// Number of distinct pre-tokens counted so far.
    #[getter]
    fn num_words(&self) -> PyResult<usize> {
        self.inner
            .as_ref()
            .map(Trainer::num_words)
            .ok_or_else(finished)
    }

    /// Train. Returns `(merges, vocab)`: merges in rank order as
    /// `(left bytes, right bytes)`, and token bytes by id (the special tokens
    /// first, as UTF-8). `progress_callback(done, total)` is called about
    /// every 1% of the new tokens; an exception it raises is re-raised once
    /// training ends.
    #[pyo3(signature = (progress_callback = None))]
    #[allow(clippy::type_complexity)]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        progress_callback: Option<Py<PyAny>>,
    ) -> PyResult<(
        Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
        Vec<Bound<'py, PyBytes>>,
    )> {
        let trainer = self.inner.take().ok_or_else(finished)?;
        let mut cb_err: Option<PyErr> = None;
        let out = py.detach(|| {
            trainer.finish(|done, total| {
                if let (Some(cb), None) = (&progress_callback, &cb_err) {
                    Python::attach(|py| {
                        if let Err(e) = cb.call1(py, (done, total)) {
                            cb_err = Some(e);
                        }
                    });
                }
            })
        })?;
        if let Some(e) = cb_err {
            return Err(e);
        }
        let merges = out
            .merges
            .iter()
            .map(|(a, b)| (PyBytes::new(py, a), PyBytes::new(py, b)))
            .collect();
        let vocab = out.vocab.iter().map(|t| PyBytes::new(py, t)).collect();
        Ok((merges, vocab))
    }
}
