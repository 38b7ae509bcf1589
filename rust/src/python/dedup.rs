//! Bindings for near-duplicate detection (`fastllm.dedup` wraps these).
//! Whole batches cross at once; the GIL is released around every kernel.
//! The kernels that read texts return their failures beside their results
//! (`crate::guard`: one panic policy), which `fastllm.data.dedup` handles.

use std::path::PathBuf;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrow::Texts;
use crate::dedup::near::LshConfig;
use crate::dedup::{external, lsh, minhash::MinHasher, near, normalize, shingle};
use crate::error::{Error, Result};
use crate::guard::Failures;
use crate::pool;

type U64Array<'py> = Bound<'py, PyArray1<u64>>;

fn as_2d<'py>(py: Python<'py>, flat: Vec<u64>, cols: usize) -> PyResult<Bound<'py, PyAny>> {
    let rows = flat.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_vec(py, flat)
        .reshape([rows, cols])?
        .into_any())
}

fn to_i64(v: Vec<u64>) -> Vec<i64> {
    v.into_iter().map(|x| x as i64).collect()
}

fn sig_slice<'a>(sigs: &'a PyReadonlyArray2<'_, u64>) -> Result<(&'a [u64], usize)> {
    let num_perm = sigs.shape()[1];
    let flat = sigs.as_slice().map_err(|_| {
        Error::invalid("signatures must be a C-contiguous (n, num_perm) uint64 array")
    })?;
    Ok((flat, num_perm))
}

/// Normalized words of one text (for tests and inspection).
#[pyfunction]
pub fn dedup_words(text: &str) -> Vec<String> {
    normalize::words(text)
}

/// Shingle hashes (xxh3-64 of word n-grams) of one text, in order.
#[pyfunction]
pub fn shingle_hashes<'py>(py: Python<'py>, text: &str, ngram: usize) -> PyResult<U64Array<'py>> {
    if ngram == 0 {
        return Err(Error::invalid("ngram must be >= 1, got 0").into());
    }
    Ok(PyArray1::from_vec(py, shingle::shingle_hashes(text, ngram)))
}

/// The `(a, b)` permutation parameters for `num_perm` and `seed`.
#[pyfunction]
pub fn minhash_params<'py>(
    py: Python<'py>,
    num_perm: usize,
    seed: u64,
) -> PyResult<(U64Array<'py>, U64Array<'py>)> {
    let m = MinHasher::new(num_perm, 1, seed)?;
    let (a, b) = m.params();
    Ok((PyArray1::from_slice(py, a), PyArray1::from_slice(py, b)))
}

/// MinHash signatures of `texts` (a list of str or an Arrow string/binary
/// column; a null is the empty document) as an (n, num_perm) uint64 array,
/// and the failures: a text whose signature panicked has zeros (no
/// signature: drop it) and is in them, `(row, panic message)`.
#[pyfunction]
pub fn minhash<'py>(
    py: Python<'py>,
    texts: Texts,
    num_perm: usize,
    ngram: usize,
    seed: u64,
) -> PyResult<(Bound<'py, PyAny>, Failures)> {
    let m = MinHasher::new(num_perm, ngram, seed)?;
    let (flat, failed) = py.detach(|| pool::install(|| m.signature_batch(&texts.strs())))?;
    Ok((as_2d(py, flat, num_perm)?, failed))
}

/// `(bands, rows)` minimizing weighted false positive + false negative
/// probability (datasketch's `_optimal_param`).
#[pyfunction]
pub fn lsh_params(
    py: Python<'_>,
    threshold: f64,
    num_perm: usize,
    false_positive_weight: f64,
    false_negative_weight: f64,
) -> PyResult<(usize, usize)> {
    Ok(py.detach(|| {
        lsh::optimal_params(
            threshold,
            num_perm,
            false_positive_weight,
            false_negative_weight,
        )
    })?)
}

/// Band keys of (n, num_perm) signatures as an (n, bands) uint64 array.
#[pyfunction]
pub fn band_keys<'py>(
    py: Python<'py>,
    sigs: PyReadonlyArray2<'py, u64>,
    bands: usize,
    rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (flat, num_perm) = sig_slice(&sigs)?;
    lsh::check_bands(bands, rows, num_perm)?;
    let keys = py.detach(|| lsh::band_keys(flat, num_perm, bands, rows));
    as_2d(py, keys, bands)
}

fn config(threshold: f64, bands: usize, rows: usize, verify: bool) -> LshConfig {
    LshConfig {
        threshold,
        bands,
        rows,
        verify,
    }
}

/// Verified star edges `(bucket minimum, member)` as two uint64 arrays.
#[pyfunction]
pub fn lsh_edges<'py>(
    py: Python<'py>,
    sigs: PyReadonlyArray2<'py, u64>,
    threshold: f64,
    bands: usize,
    rows: usize,
    verify: bool,
) -> PyResult<(U64Array<'py>, U64Array<'py>)> {
    let (flat, num_perm) = sig_slice(&sigs)?;
    let cfg = config(threshold, bands, rows, verify);
    let edges = py.detach(|| pool::install(|| near::edges(flat, num_perm, &cfg)))??;
    let (u, v): (Vec<u64>, Vec<u64>) = edges.into_iter().unzip();
    Ok((PyArray1::from_vec(py, u), PyArray1::from_vec(py, v)))
}

/// All near-duplicate pairs `(i, j)`, `i < j`, as an (m, 2) uint64 array.
#[pyfunction]
pub fn lsh_pairs<'py>(
    py: Python<'py>,
    sigs: PyReadonlyArray2<'py, u64>,
    threshold: f64,
    bands: usize,
    rows: usize,
    verify: bool,
    max_bucket: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (flat, num_perm) = sig_slice(&sigs)?;
    let cfg = config(threshold, bands, rows, verify);
    let pairs = py.detach(|| pool::install(|| near::pairs(flat, num_perm, &cfg, max_bucket)))??;
    let flat: Vec<u64> = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
    as_2d(py, flat, 2)
}

/// Cluster ids (smallest index in the cluster) from signatures.
#[pyfunction]
pub fn clusters_from_signatures<'py>(
    py: Python<'py>,
    sigs: PyReadonlyArray2<'py, u64>,
    threshold: f64,
    bands: usize,
    rows: usize,
    verify: bool,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (flat, num_perm) = sig_slice(&sigs)?;
    let cfg = config(threshold, bands, rows, verify);
    let labels = py.detach(|| pool::install(|| near::clusters(flat, num_perm, &cfg)))??;
    Ok(PyArray1::from_vec(py, to_i64(labels)))
}

/// Cluster ids of `texts` (a list of str or an Arrow string/binary column;
/// a null is the empty document) in one call: signatures, LSH, union-find;
/// and the failures, `(row, panic message)`: those texts are left out of
/// the clustering and are their own clusters (`near::clusters_of_texts`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn near_duplicate_clusters<'py>(
    py: Python<'py>,
    texts: Texts,
    threshold: f64,
    num_perm: usize,
    ngram: usize,
    seed: u64,
    verify: bool,
    bands: usize,
    rows: usize,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Failures)> {
    let m = MinHasher::new(num_perm, ngram, seed)?;
    let cfg = config(threshold, bands, rows, verify);
    cfg.check(num_perm)?;
    let (labels, failed) =
        py.detach(|| pool::install(|| near::clusters_of_texts(&texts.strs(), &m, &cfg, false)))??;
    Ok((PyArray1::from_vec(py, to_i64(labels)), failed))
}

/// Cluster ids of `texts`, candidates verified by exact shingle Jaccard,
/// and the failures (as `near_duplicate_clusters`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn near_duplicate_clusters_exact<'py>(
    py: Python<'py>,
    texts: Texts,
    threshold: f64,
    num_perm: usize,
    ngram: usize,
    seed: u64,
    bands: usize,
    rows: usize,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Failures)> {
    let m = MinHasher::new(num_perm, ngram, seed)?;
    let cfg = config(threshold, bands, rows, true);
    cfg.check(num_perm)?;
    let (labels, failed) =
        py.detach(|| pool::install(|| near::clusters_of_texts(&texts.strs(), &m, &cfg, true)))??;
    Ok((PyArray1::from_vec(py, to_i64(labels)), failed))
}

/// Exact Jaccard of the shingle sets of `texts[u[i]]` and `texts[v[i]]`,
/// and the failures, `(row of texts, panic message)`: a pair with a text
/// whose shingling panicked is NaN (below every threshold).
#[pyfunction]
pub fn shingle_jaccard<'py>(
    py: Python<'py>,
    texts: Texts,
    u: PyReadonlyArray1<'py, u64>,
    v: PyReadonlyArray1<'py, u64>,
    ngram: usize,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Failures)> {
    let (u, v) = (u.as_slice()?, v.as_slice()?);
    if u.len() != v.len() {
        return Err(Error::invalid(format!(
            "pairs: u has {} entries but v has {}",
            u.len(),
            v.len()
        ))
        .into());
    }
    let pairs: Vec<(u64, u64)> = u.iter().copied().zip(v.iter().copied()).collect();
    let (sims, failed) =
        py.detach(|| pool::install(|| near::exact_jaccard(&texts.strs(), ngram, &pairs)))??;
    Ok((PyArray1::from_vec(py, sims), failed))
}

/// Sorted, deduplicated shingle hashes of `texts[which]` (every text when
/// None) as `(offsets, hashes, failures)`: row `k` is
/// `hashes[offsets[k]:offsets[k+1]]`; a text whose shingling panicked has
/// an empty row and is in the failures, `(row of texts, panic message)`.
#[pyfunction]
#[pyo3(signature = (texts, ngram, which=None))]
pub fn shingle_sets<'py>(
    py: Python<'py>,
    texts: Texts,
    ngram: usize,
    which: Option<PyReadonlyArray1<'py, u64>>,
) -> PyResult<(U64Array<'py>, U64Array<'py>, Failures)> {
    let which = match &which {
        Some(w) => Some(w.as_slice()?),
        None => None,
    };
    let (off, hashes, failed) =
        py.detach(|| pool::install(|| near::shingle_sets(&texts.strs(), ngram, which)))??;
    Ok((
        PyArray1::from_vec(py, off),
        PyArray1::from_vec(py, hashes),
        failed,
    ))
}

/// Exact Jaccard of row `ia[k]` of set table `a` and row `ib[k]` of `b`.
#[pyfunction]
pub fn set_table_jaccard<'py>(
    py: Python<'py>,
    a_offsets: PyReadonlyArray1<'py, u64>,
    a_hashes: PyReadonlyArray1<'py, u64>,
    b_offsets: PyReadonlyArray1<'py, u64>,
    b_hashes: PyReadonlyArray1<'py, u64>,
    ia: PyReadonlyArray1<'py, u64>,
    ib: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let a = (a_offsets.as_slice()?, a_hashes.as_slice()?);
    let b = (b_offsets.as_slice()?, b_hashes.as_slice()?);
    let (ia, ib) = (ia.as_slice()?, ib.as_slice()?);
    let sims = py.detach(|| pool::install(|| near::table_jaccard(a, b, ia, ib)))??;
    Ok(PyArray1::from_vec(py, sims))
}

/// Union-find over `n` documents and edges `u[i] -- v[i]`: each document's
/// smallest cluster member.
#[pyfunction]
pub fn union_find<'py>(
    py: Python<'py>,
    n: usize,
    u: PyReadonlyArray1<'py, u64>,
    v: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (u, v) = (u.as_slice()?, v.as_slice()?);
    if u.len() != v.len() {
        return Err(Error::invalid(format!(
            "edges: u has {} entries but v has {}",
            u.len(),
            v.len()
        ))
        .into());
    }
    let edges: Vec<(u64, u64)> = u.iter().copied().zip(v.iter().copied()).collect();
    let labels = py.detach(|| near::labels_from_edges(n, &edges))?;
    Ok(PyArray1::from_vec(py, to_i64(labels)))
}

/// Sort `(band, key, doc)` records and write them as a run file at `path`.
#[pyfunction]
pub fn write_run(
    py: Python<'_>,
    path: PathBuf,
    band: PyReadonlyArray1<'_, u64>,
    key: PyReadonlyArray1<'_, u64>,
    doc: PyReadonlyArray1<'_, u64>,
) -> PyResult<()> {
    let (band, key, doc) = (band.as_slice()?, key.as_slice()?, doc.as_slice()?);
    if band.len() != key.len() || key.len() != doc.len() {
        return Err(Error::invalid("write_run: band, key and doc must have one length").into());
    }
    let mut recs: Vec<external::Record> =
        (0..band.len()).map(|i| (band[i], key[i], doc[i])).collect();
    py.detach(|| external::write_run(&path, &mut recs))?;
    Ok(())
}

/// K-way merge of run files into an edge file; returns the edge count.
#[pyfunction]
pub fn merge_runs(py: Python<'_>, paths: Vec<PathBuf>, out: PathBuf) -> PyResult<u64> {
    Ok(py.detach(|| external::merge_runs(&paths, &out))?)
}

/// The edges of an edge file as two uint64 arrays.
#[pyfunction]
pub fn read_edges<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(U64Array<'py>, U64Array<'py>)> {
    let edges = py.detach(|| external::read_edges(&path))?;
    let (u, v): (Vec<u64>, Vec<u64>) = edges.into_iter().unzip();
    Ok((PyArray1::from_vec(py, u), PyArray1::from_vec(py, v)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dedup_words, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_params, m)?)?;
    m.add_function(wrap_pyfunction!(minhash, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_params, m)?)?;
    m.add_function(wrap_pyfunction!(band_keys, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_edges, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(clusters_from_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(near_duplicate_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(near_duplicate_clusters_exact, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_jaccard, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_sets, m)?)?;
    m.add_function(wrap_pyfunction!(set_table_jaccard, m)?)?;
    m.add_function(wrap_pyfunction!(union_find, m)?)?;
    m.add_function(wrap_pyfunction!(write_run, m)?)?;
    m.add_function(wrap_pyfunction!(merge_runs, m)?)?;
    m.add_function(wrap_pyfunction!(read_edges, m)?)?;
    Ok(())
}
