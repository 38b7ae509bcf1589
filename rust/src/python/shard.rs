//! Bindings for the shard writer (`fastllm.shards.ShardWriter` wraps it).

use std::path::PathBuf;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::shard::{ShardWriter, WriterConfig};

/// (name, documents, tokens, bin_bytes, oversized) per published shard.
type ShardTuple = (String, u64, u64, u64, bool);

/// Writes documents into size-capped Megatron shards.
#[pyclass(module = "fastllm._core", name = "ShardWriter")]
pub struct PyShardWriter {
    inner: Option<ShardWriter>,
}

impl PyShardWriter {
    fn writer(&mut self) -> Result<&mut ShardWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::invalid("the shard writer is already finished"))
    }
}

#[pymethods]
impl PyShardWriter {
    #[new]
    #[pyo3(signature = (dir, vocab_size, prefix = "shard".to_string(), eos_id = None, max_shard_bytes = 1 << 30, sync = true))]
    fn new(
        dir: PathBuf,
        vocab_size: usize,
        prefix: String,
        eos_id: Option<u32>,
        max_shard_bytes: u64,
        sync: bool,
    ) -> PyResult<Self> {
        let cfg = WriterConfig {
            dir,
            prefix,
            vocab_size,
            eos_id,
            max_shard_bytes,
            sync,
        };
        Ok(Self {
            inner: Some(ShardWriter::new(cfg)?),
        })
    }

    /// Add documents: flat uint32 `ids` and int64 `offsets` (documents + 1),
    /// counted under `source`. The GIL is released while writing.
    fn add(
        &mut self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u32>,
        offsets: PyReadonlyArray1<'_, i64>,
        source: &str,
    ) -> PyResult<()> {
        let ids = ids.as_slice()?;
        let offsets = offsets.as_slice()?;
        let w = self.writer()?;
        py.detach(|| w.add_documents(ids, offsets, source))?;
        Ok(())
    }

    /// Publish the open shard; returns every shard written as
    /// (name, documents, tokens, bin_bytes, oversized).
    fn finish(&mut self, py: Python<'_>) -> PyResult<Vec<ShardTuple>> {
        let w = self
            .inner
            .take()
            .ok_or_else(|| Error::invalid("the shard writer is already finished"))?;
        let shards = py.detach(|| w.finish())?;
        Ok(shards
            .into_iter()
            .map(|s| (s.name, s.documents, s.tokens, s.bin_bytes, s.oversized))
            .collect())
    }

    /// Drop the open shard's temporary files without publishing it.
    fn abort(&mut self) {
        self.inner = None;
    }

    /// (source, documents, tokens) written so far.
    #[getter]
    fn sources(&mut self) -> PyResult<Vec<(String, u64, u64)>> {
        Ok(self
            .writer()?
            .sources()
            .iter()
            .map(|(k, &(d, t))| (k.clone(), d, t))
            .collect())
    }

    /// The token dtype's numpy name ("uint16" or "int32").
    #[getter]
    fn dtype(&mut self) -> PyResult<&'static str> {
        Ok(self.writer()?.dtype().name())
    }
}
