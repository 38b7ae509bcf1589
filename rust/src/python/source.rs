//! Bindings for `crate::source`: WARC/WET documents in batches
//! (`fastllm.data.readers` turns them into Arrow tables).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::source::{Kind, Options, WarcReader};

/// ids, urls, the payloads back to back (uint8), and their int32 offsets
/// (n + 1). Both arrays take over Rust's buffers without a copy.
type Batch<'py> = (
    Vec<String>,
    Vec<String>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<i32>>,
);

/// Documents of one WARC or WET file (gzip or plain), in batches.
#[pyclass(module = "fastllm._core", name = "WarcReader")]
pub struct PyWarcReader {
    inner: WarcReader<BufReader<File>>,
    path: PathBuf,
    done: bool,
}

#[pymethods]
impl PyWarcReader {
    #[new]
    #[pyo3(signature = (path, wet = false, max_record_bytes = 64 << 20))]
    fn new(path: PathBuf, wet: bool, max_record_bytes: usize) -> PyResult<Self> {
        let mut opts = Options::new(if wet { Kind::Wet } else { Kind::Warc });
        opts.max_record_bytes = max_record_bytes;
        Ok(Self {
            inner: WarcReader::open(&path, opts)?,
            path,
            done: false,
        })
    }

    /// The next batch of up to `max_docs` documents (fewer once the payloads
    /// pass `max_bytes`), or None at the end. The GIL is released while
    /// reading. Small batches are the fast ones: a few MB is what the
    /// allocator hands back and reuses, where tens of MB are fresh pages
    /// (page faults) every time.
    #[pyo3(signature = (max_docs = 1024, max_bytes = 2 << 20))]
    fn read_batch<'py>(
        &mut self,
        py: Python<'py>,
        max_docs: usize,
        max_bytes: usize,
    ) -> PyResult<Option<Batch<'py>>> {
        if max_docs == 0 || max_bytes == 0 || max_bytes > (1 << 30) {
            return Err(
                Error::invalid("read_batch: max_docs must be > 0, max_bytes in 1..=2**30").into(),
            );
        }
        if self.done {
            return Ok(None);
        }
        let (reader, path) = (&mut self.inner, &self.path);
        let (ids, urls, data, offsets, done) = py.detach(|| {
            let mut ids = Vec::new();
            let mut urls = Vec::new();
            // Sized for the whole batch up front: growing by doubling would
            // copy it several times over.
            let mut data = Vec::with_capacity(max_bytes);
            let mut offsets = vec![0i32];
            let mut done = false;
            while ids.len() < max_docs && data.len() < max_bytes {
                match reader.next_doc() {
                    Ok(Some(doc)) => {
                        // The document that passes max_bytes: exactly its size
                        // more, not a doubling.
                        data.reserve_exact(doc.payload.len());
                        data.extend_from_slice(&doc.payload);
                        offsets.push(data.len() as i32);
                        ids.push(doc.id);
                        urls.push(doc.url);
                    }
                    Ok(None) => {
                        done = true;
                        break;
                    }
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
            Ok((ids, urls, data, offsets, done))
        })?;
        self.done = done;
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(Some((
            ids,
            urls,
            PyArray1::from_vec(py, data),
            PyArray1::from_vec(py, offsets),
        )))
    }

    /// What was read and skipped so far: records, docs, garbage_bytes,
    /// gzip_errors, utf8_repaired, dropped {reason: n}, other_types {type: n}.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.counts();
        let d = PyDict::new(py);
        d.set_item("records", c.records)?;
        d.set_item("docs", c.docs)?;
        d.set_item("garbage_bytes", c.garbage_bytes)?;
        d.set_item("gzip_errors", c.gzip_errors)?;
        d.set_item("utf8_repaired", c.utf8_repaired)?;
        let dropped = PyDict::new(py);
        for (reason, n) in &c.dropped {
            dropped.set_item(reason.as_str(), n)?;
        }
        d.set_item("dropped", dropped)?;
        d.set_item("other_types", c.other_types.into_iter().collect::<Vec<_>>())?;
        Ok(d)
    }

    /// One line per problem met (the first 100).
    fn messages(&self) -> Vec<String> {
        self.inner.messages().to_vec()
    }
}
