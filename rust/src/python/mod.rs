//! The only door between Rust and Python. Functions here convert types,
//! release the GIL around kernels and map errors (see `errors.rs`); the
//! algorithms live in the plain-Rust modules.

mod arrow;
mod bpe;
// `dedup` the name is taken by `crate::dedup` below.
#[path = "dedup.rs"]
mod dedup_py;
mod errors;
mod extract;
mod filter;
mod shard;
mod source;
mod train;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use self::arrow::Texts;
use crate::guard::{self, Doc, Failures};
use crate::{dedup, pool};

/// Set the number of threads the Rust kernels use (also read from
/// FASTLLM_NUM_THREADS). Takes effect at the next kernel call.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    Ok(pool::set_num_threads(n)?)
}

/// The number of threads the next Rust kernel will use.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    Ok(pool::num_threads()?)
}

/// 128-bit xxh3 content hashes of `texts` as an (n, 2) uint64 array
/// (high word, low word), and the failures; with `normalize`, case,
/// punctuation and whitespace are folded first. `texts` is a list of str or
/// an Arrow string/binary column (a null hashes as the empty document). A
/// text whose hashing panicked has zeros (no hash: drop it) and is in the
/// failures, `(row, panic message)` (`crate::guard`).
#[pyfunction]
#[pyo3(signature = (texts, normalize = true))]
fn content_hashes<'py>(
    py: Python<'py>,
    texts: Texts,
    normalize: bool,
) -> PyResult<(Bound<'py, PyAny>, Failures)> {
    let (words, failed) = py.detach(|| -> crate::Result<_> {
        let docs = pool::install(|| dedup::exact::hash_batch(&texts.rows_str(), normalize))?;
        let empty = dedup::exact::content_hash("", normalize);
        let mut words = Vec::with_capacity(2 * docs.len());
        for d in &docs {
            let h = match d {
                Doc::Done(h) => *h,
                Doc::Null => empty,
                Doc::Failed(_) => 0,
            };
            words.push((h >> 64) as u64);
            words.push(h as u64);
        }
        Ok((words, guard::failures(&docs)))
    })?;
    let n = words.len() / 2;
    let arr = PyArray1::from_vec(py, words).reshape([n, 2])?;
    Ok((arr.into_any(), failed))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::VERSION)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(content_hashes, m)?)?;
    m.add_class::<arrow::ArrowArray>()?;
    m.add_class::<bpe::PyBpe>()?;
    m.add_class::<train::BpeTrainer>()?;
    m.add_function(wrap_pyfunction!(extract::extract_text, m)?)?;
    m.add_function(wrap_pyfunction!(extract::extract_batch, m)?)?;
    m.add_function(wrap_pyfunction!(extract::extract_arrow, m)?)?;
    dedup_py::register(m)?;
    filter::register(m)?;
    m.add_class::<shard::PyShardWriter>()?;
    m.add_class::<source::PyWarcReader>()?;
    Ok(())
}
