//! In-memory near-duplicate clustering: LSH buckets, verified edges,
//! union-find.
//!
//! In every band, documents are grouped by bucket key; each member of a
//! bucket is joined to the bucket's smallest document (a star, not all
//! pairs, so 10,000 identical documents cost 10,000 edges, not 50 million).
//! With `verify`, an edge is kept only when the two signatures agree on at
//! least `threshold` of their positions. The edge set is a pure function of
//! the signatures, so the clusters do not depend on the thread count, and
//! the out-of-core and Ray modes, which build the same edges, agree with
//! this one.
//!
//! The kernels that read the texts (signatures, shingle sets for exact
//! verification) follow the one panic policy (`crate::guard`): a document
//! whose kernel panics is in the failures, takes part in no edge, and is
//! its own cluster; the caller drops it.

use rayon::prelude::*;

use super::cluster::UnionFind;
use super::lsh::{band_key, check_bands, signature_similarity};
use super::minhash::MinHasher;
use super::shingle;
use crate::error::{Error, Result};
use crate::guard::{self, Doc, Failures};

#[derive(Clone, Copy, Debug)]
pub struct LshConfig {
    pub threshold: f64,
    pub bands: usize,
    pub rows: usize,
    pub verify: bool,
}

impl LshConfig {
    pub fn check(&self, num_perm: usize) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::invalid(format!(
                "threshold must be in (0, 1], got {}",
                self.threshold
            )));
        }
        check_bands(self.bands, self.rows, num_perm)
    }
}

fn check_sigs(sigs: &[u64], num_perm: usize) -> Result<usize> {
    if num_perm == 0 || !sigs.len().is_multiple_of(num_perm) {
        return Err(Error::invalid(format!(
            "signatures: length {} is not a multiple of num_perm {num_perm}",
            sigs.len()
        )));
    }
    Ok(sigs.len() / num_perm)
}

/// The candidate edges `(bucket minimum, member)` of every band, verified
/// when `cfg.verify`, in a deterministic order (band, then key, then doc).
pub fn edges(sigs: &[u64], num_perm: usize, cfg: &LshConfig) -> Result<Vec<(u64, u64)>> {
    cfg.check(num_perm)?;
    let n = check_sigs(sigs, num_perm)?;
    let sig = |i: u64| &sigs[i as usize * num_perm..(i as usize + 1) * num_perm];
    let per_band: Vec<Vec<(u64, u64)>> = (0..cfg.bands)
        .into_par_iter()
        .map(|band| {
            let mut keyed: Vec<(u64, u64)> = (0..n as u64)
                .map(|i| (band_key(sig(i), band, cfg.rows), i))
                .collect();
            keyed.sort_unstable();
            let mut out = Vec::new();
            let mut g = 0;
            while g < keyed.len() {
                let (key, first) = keyed[g];
                let mut k = g + 1;
                while k < keyed.len() && keyed[k].0 == key {
                    let doc = keyed[k].1;
                    if !cfg.verify || signature_similarity(sig(first), sig(doc)) >= cfg.threshold {
                        out.push((first, doc));
                    }
                    k += 1;
                }
                g = k;
            }
            out
        })
        .collect();
    Ok(per_band.concat())
}

/// Every near-duplicate pair `(i, j)`, `i < j`, once: all pairs that share a
/// bucket in some band (verified when `cfg.verify`), sorted. Quadratic in
/// bucket size, so a bucket of more than `max_bucket` documents is an error
/// (clustering, which needs only the star edges, has no such limit).
pub fn pairs(
    sigs: &[u64],
    num_perm: usize,
    cfg: &LshConfig,
    max_bucket: usize,
) -> Result<Vec<(u64, u64)>> {
    cfg.check(num_perm)?;
    let n = check_sigs(sigs, num_perm)?;
    let sig = |i: u64| &sigs[i as usize * num_perm..(i as usize + 1) * num_perm];
    let per_band: Vec<Result<Vec<(u64, u64)>>> = (0..cfg.bands)
        .into_par_iter()
        .map(|band| {
            let mut keyed: Vec<(u64, u64)> = (0..n as u64)
                .map(|i| (band_key(sig(i), band, cfg.rows), i))
                .collect();
            keyed.sort_unstable();
            let mut out = Vec::new();
            for group in keyed.chunk_by(|x, y| x.0 == y.0) {
                if group.len() > max_bucket {
                    return Err(Error::invalid(format!(
                        "max_bucket: a bucket of band {band} holds {} documents, more than \
                         max_bucket={max_bucket}; cluster instead, or raise max_bucket",
                        group.len()
                    )));
                }
                for (k, &(_, a)) in group.iter().enumerate() {
                    for &(_, b) in &group[k + 1..] {
                        if !cfg.verify || signature_similarity(sig(a), sig(b)) >= cfg.threshold {
                            out.push((a, b));
                        }
                    }
                }
            }
            Ok(out)
        })
        .collect();
    let mut all = Vec::new();
    for band in per_band {
        all.extend(band?);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// The sorted, deduplicated shingle hashes of the texts at `which` (every
/// text when None) as one table: row `k` is `hashes[offsets[k]..offsets[k +
/// 1]]`. Rows are computed in parallel, each alone, so the table does not
/// depend on the thread count. A text whose shingling panicked has an
/// empty row and is in the failures, `(index into texts, panic message)`.
pub fn shingle_sets<S: AsRef<str> + Sync>(
    texts: &[S],
    ngram: usize,
    which: Option<&[u64]>,
) -> Result<(Vec<u64>, Vec<u64>, Failures)> {
    if ngram == 0 {
        return Err(Error::invalid("ngram must be >= 1, got 0"));
    }
    let n = texts.len();
    let all: Vec<u64>;
    let which = match which {
        Some(w) => {
            if let Some(&bad) = w.iter().find(|&&i| i as usize >= n) {
                return Err(Error::invalid(format!(
                    "index {bad} is out of range for {n} texts"
                )));
            }
            w
        }
        None => {
            all = (0..n as u64).collect();
            &all
        }
    };
    let docs = guard::map_documents_init(
        which,
        || (shingle::Scratch::default(), Vec::new()),
        |(scratch, hashes), &i| {
            shingle::shingle_hashes_into(texts[i as usize].as_ref(), ngram, scratch, hashes);
            let mut set = hashes.clone();
            set.sort_unstable();
            set.dedup();
            set
        },
    );
    let mut failed = Vec::new();
    let mut offsets = Vec::with_capacity(docs.len() + 1);
    offsets.push(0u64);
    let mut total = 0u64;
    for (d, &i) in docs.iter().zip(which) {
        match d {
            Doc::Done(r) => total += r.len() as u64,
            Doc::Failed(p) => failed.push((i as usize, p.message.clone())),
            Doc::Null => {}
        }
        offsets.push(total);
    }
    let mut hashes = Vec::with_capacity(total as usize);
    for d in &docs {
        if let Doc::Done(r) = d {
            hashes.extend_from_slice(r);
        }
    }
    Ok((offsets, hashes, failed))
}

/// A table of sorted sets made by [`shingle_sets`]: `(offsets, hashes)`.
pub type SetTable<'a> = (&'a [u64], &'a [u64]);

fn check_table(t: SetTable<'_>, name: &str) -> Result<usize> {
    let (off, hashes) = t;
    let ok = !off.is_empty()
        && off[0] == 0
        && *off.last().unwrap() as usize == hashes.len()
        && off.windows(2).all(|w| w[0] <= w[1]);
    if !ok {
        return Err(Error::invalid(format!(
            "{name}: offsets must start at 0, not decrease and end at the number of hashes"
        )));
    }
    Ok(off.len() - 1)
}

fn row<'a>(t: SetTable<'a>, k: u64) -> &'a [u64] {
    &t.1[t.0[k as usize] as usize..t.0[k as usize + 1] as usize]
}

/// Exact Jaccard of row `ia[k]` of table `a` and row `ib[k]` of table `b`
/// for every `k` (two empty sets count as identical, 1.0), in parallel: one
/// merge of two sorted lists per pair.
pub fn table_jaccard(a: SetTable<'_>, b: SetTable<'_>, ia: &[u64], ib: &[u64]) -> Result<Vec<f64>> {
    let (na, nb) = (check_table(a, "a")?, check_table(b, "b")?);
    if ia.len() != ib.len() {
        return Err(Error::invalid(format!(
            "pairs: {} rows of a but {} rows of b",
            ia.len(),
            ib.len()
        )));
    }
    if ia.iter().any(|&i| i as usize >= na) || ib.iter().any(|&i| i as usize >= nb) {
        return Err(Error::invalid(format!(
            "pairs: row out of range (a has {na} rows, b has {nb})"
        )));
    }
    Ok(ia
        .par_iter()
        .zip(ib.par_iter())
        .map(|(&x, &y)| sorted_jaccard(row(a, x), row(b, y)))
        .collect())
}

/// Exact Jaccard of the shingle sets of each pair of `texts` (two empty
/// sets count as identical, 1.0). Only the documents in some pair are
/// shingled, once each, their hashes sorted and deduplicated; a pair costs
/// one merge of two sorted lists. A text whose shingling panicked is in
/// the failures, `(index into texts, panic message)`, and every pair with
/// it is NaN, which is below any threshold: it is nobody's duplicate.
pub fn exact_jaccard<S: AsRef<str> + Sync>(
    texts: &[S],
    ngram: usize,
    pairs: &[(u64, u64)],
) -> Result<(Vec<f64>, Failures)> {
    let n = texts.len();
    // Row of each needed document in the set table (u64::MAX: not needed).
    let mut row_of = vec![u64::MAX; n];
    for &(a, b) in pairs {
        if a as usize >= n || b as usize >= n {
            return Err(Error::invalid(format!(
                "pairs: ({a}, {b}) is out of range for {n} texts"
            )));
        }
        row_of[a as usize] = 0;
        row_of[b as usize] = 0;
    }
    let mut which = Vec::new();
    for (i, r) in row_of.iter_mut().enumerate() {
        if *r == 0 {
            *r = which.len() as u64;
            which.push(i as u64);
        }
    }
    let (off, hashes, failed) = shingle_sets(texts, ngram, Some(&which))?;
    let t = (&off[..], &hashes[..]);
    let (ia, ib): (Vec<u64>, Vec<u64>) = pairs
        .iter()
        .map(|&(a, b)| (row_of[a as usize], row_of[b as usize]))
        .unzip();
    let mut sims = table_jaccard(t, t, &ia, &ib)?;
    unpair_failed(&mut sims, pairs, &failed, n);
    Ok((sims, failed))
}

/// NaN for every pair with a failed text (`n` texts in all).
fn unpair_failed(sims: &mut [f64], pairs: &[(u64, u64)], failed: &Failures, n: usize) {
    if failed.is_empty() {
        return;
    }
    let mut bad = vec![false; n];
    for &(i, _) in failed {
        bad[i] = true;
    }
    for (sim, &(a, b)) in sims.iter_mut().zip(pairs) {
        if bad[a as usize] || bad[b as usize] {
            *sim = f64::NAN;
        }
    }
}

fn sorted_jaccard(x: &[u64], y: &[u64]) -> f64 {
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (x.len() + y.len() - common) as f64
}

/// Clusters with candidates verified by exact shingle-set Jaccard instead of
/// signature agreement: the star edges of `edges` (unverified), kept when
/// the two texts' Jaccard is at least `cfg.threshold`. The failures are
/// [`exact_jaccard`]'s: those texts are in no kept edge.
pub fn clusters_exact<S: AsRef<str> + Sync>(
    texts: &[S],
    ngram: usize,
    sigs: &[u64],
    num_perm: usize,
    cfg: &LshConfig,
) -> Result<(Vec<u64>, Failures)> {
    let n = check_sigs(sigs, num_perm)?;
    if n != texts.len() {
        return Err(Error::invalid(format!(
            "signatures: {n} rows for {} texts",
            texts.len()
        )));
    }
    let mut cand = edges(
        sigs,
        num_perm,
        &LshConfig {
            verify: false,
            ..*cfg
        },
    )?;
    cand.sort_unstable();
    cand.dedup();
    let (sims, failed) = exact_jaccard(texts, ngram, &cand)?;
    let kept: Vec<(u64, u64)> = cand
        .into_iter()
        .zip(sims)
        .filter(|&(_, j)| j >= cfg.threshold)
        .map(|(e, _)| e)
        .collect();
    Ok((labels_from_edges(n, &kept)?, failed))
}

/// Near-duplicate clusters of `texts` in one call: signatures, LSH, then
/// verification (exact shingle-set Jaccard with `exact`, else as
/// `cfg.verify` says). A document whose signature panicked is left out of
/// LSH, as if it were not in the batch; one whose shingling panicked is in
/// no verified edge; either way it is its own cluster and in the failures,
/// `(row, panic message)`, in row order.
pub fn clusters_of_texts<S: AsRef<str> + Sync>(
    texts: &[S],
    m: &MinHasher,
    cfg: &LshConfig,
    exact: bool,
) -> Result<(Vec<u64>, Failures)> {
    let (sigs, failed) = m.signature_batch(texts);
    clusters_without(texts, &sigs, failed, m, cfg, exact)
}

/// [`clusters_of_texts`] from the signatures, leaving out the rows in
/// `failed` (whose signatures are not looked at).
fn clusters_without<S: AsRef<str> + Sync>(
    texts: &[S],
    sigs: &[u64],
    mut failed: Failures,
    m: &MinHasher,
    cfg: &LshConfig,
    exact: bool,
) -> Result<(Vec<u64>, Failures)> {
    let np = m.num_perm();
    let cluster = |texts: &[&str], sigs: &[u64]| -> Result<(Vec<u64>, Failures)> {
        if exact {
            clusters_exact(texts, m.ngram(), sigs, np, cfg)
        } else {
            Ok((clusters(sigs, np, cfg)?, Vec::new()))
        }
    };
    let all: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    if failed.is_empty() {
        return cluster(&all, sigs);
    }
    // Cluster the others alone (copies of their signatures), then put the
    // failed rows back in as clusters of one.
    let rows = surviving_rows(texts.len(), &failed);
    let sub_sigs: Vec<u64> = rows
        .iter()
        .flat_map(|&r| sigs[r * np..(r + 1) * np].iter().copied())
        .collect();
    let sub_texts: Vec<&str> = rows.iter().map(|&r| all[r]).collect();
    let (sub, more) = cluster(&sub_texts, &sub_sigs)?;
    failed.extend(more.into_iter().map(|(k, msg)| (rows[k], msg)));
    failed.sort_by_key(|f| f.0);
    Ok((labels_with_gaps(texts.len(), &rows, &sub), failed))
}

/// The rows `0..n` that are not in `failed`, ascending.
pub fn surviving_rows(n: usize, failed: &Failures) -> Vec<usize> {
    let mut bad = vec![false; n];
    for &(i, _) in failed {
        bad[i] = true;
    }
    (0..n).filter(|&i| !bad[i]).collect()
}

/// Cluster ids of all `n` documents from `sub`, the ids of the documents
/// `rows` (ascending) clustered without the others (ids are positions in
/// `rows`): row `rows[k]` gets `rows[sub[k]]`, still the smallest member
/// because `rows` ascends; every other row is a cluster of its own.
pub fn labels_with_gaps(n: usize, rows: &[usize], sub: &[u64]) -> Vec<u64> {
    let mut labels: Vec<u64> = (0..n as u64).collect();
    for (&r, &l) in rows.iter().zip(sub) {
        labels[r] = rows[l as usize] as u64;
    }
    labels
}

/// Union-find labels over `n` documents joined by `edges`.
pub fn labels_from_edges(n: usize, edges: &[(u64, u64)]) -> Result<Vec<u64>> {
    let mut uf = UnionFind::new(n);
    for &(u, v) in edges {
        if u as usize >= n || v as usize >= n {
            return Err(Error::invalid(format!(
                "edges: ({u}, {v}) is out of range for {n} documents"
            )));
        }
        uf.union(u, v);
    }
    Ok(uf.labels())
}

/// Each document's cluster id: the smallest index in its cluster.
pub fn clusters(sigs: &[u64], num_perm: usize, cfg: &LshConfig) -> Result<Vec<u64>> {
    let n = check_sigs(sigs, num_perm)?;
    labels_from_edges(n, &edges(sigs, num_perm, cfg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: LshConfig = LshConfig {
        threshold: 0.8,
        bands: 16,
        rows: 8,
        verify: true,
    };

    #[test]
    fn near_duplicates_cluster_and_others_do_not() {
        let base: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        let a = base.join(" ");
        let mut edited = base.clone();
        edited[100] = "changed".into();
        let b = edited.join(" ");
        let c: String = (0..200).map(|i| format!("z{i} ")).collect();
        let texts = [a.as_str(), c.as_str(), b.as_str(), a.as_str(), ""];
        let m = MinHasher::new(128, 5, 0).unwrap();
        let sigs = m.signatures(&texts);
        assert_eq!(clusters(&sigs, 128, &CFG).unwrap(), vec![0, 1, 0, 0, 4]);
    }

    #[test]
    fn identical_documents_make_a_star() {
        let texts = vec!["the same text again and again"; 1000];
        let m = MinHasher::new(128, 5, 0).unwrap();
        let sigs = m.signatures(&texts);
        let e = edges(&sigs, 128, &CFG).unwrap();
        assert_eq!(e.len(), 16 * 999);
        assert!(clusters(&sigs, 128, &CFG).unwrap().iter().all(|&c| c == 0));
    }

    #[test]
    fn pairs_are_all_bucket_pairs_once() {
        let texts = vec!["a b c d e f g h"; 4];
        let m = MinHasher::new(128, 5, 0).unwrap();
        let sigs = m.signatures(&texts);
        let p = pairs(&sigs, 128, &CFG, 100).unwrap();
        assert_eq!(p, vec![(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]);
        let e = pairs(&sigs, 128, &CFG, 3).unwrap_err();
        assert!(e.to_string().contains("max_bucket"));
    }

    #[test]
    fn exact_verification_uses_true_jaccard() {
        assert_eq!(sorted_jaccard(&[1, 2, 3, 4], &[2, 3, 4, 5]), 0.6);
        assert_eq!(sorted_jaccard(&[], &[]), 1.0);
        assert_eq!(sorted_jaccard(&[1], &[]), 0.0);
        let j = exact_jaccard(&["a b c d", "a b c e", ""], 2, &[(0, 1), (2, 2)]).unwrap();
        assert_eq!(j, (vec![0.5, 1.0], vec![]));
        assert!(exact_jaccard(&["a"], 2, &[(0, 1)]).is_err());
        let (off, hs, failed) =
            shingle_sets(&["a b c d", "x", "a b c e"], 2, Some(&[2, 0])).unwrap();
        assert_eq!(off, vec![0, 3, 6]);
        assert!(failed.is_empty());
        let t = (&off[..], &hs[..]);
        assert_eq!(
            table_jaccard(t, t, &[0, 1], &[1, 1]).unwrap(),
            vec![0.5, 1.0]
        );
        assert!(table_jaccard(t, t, &[2], &[0]).is_err());
        assert!(table_jaccard((&[0, 5], &hs), t, &[0], &[0]).is_err());
        assert!(shingle_sets(&["a"], 2, Some(&[1])).is_err());
        let texts = [
            "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10",
            "w1 w2 w3 w4 w5 w6 w7 w8 w9 w11",
            "x y",
        ];
        let m = MinHasher::new(128, 2, 0).unwrap();
        let sigs = m.signatures(&texts);
        let loose = LshConfig {
            threshold: 0.8,
            bands: 32,
            rows: 4,
            verify: true,
        };
        // Jaccard 8/10 = 0.8 exactly: kept at 0.8, dropped at 0.81.
        assert_eq!(
            clusters_exact(&texts, 2, &sigs, 128, &loose).unwrap(),
            (vec![0, 0, 2], vec![])
        );
        let strict = LshConfig {
            threshold: 0.81,
            ..loose
        };
        assert_eq!(
            clusters_exact(&texts, 2, &sigs, 128, &strict).unwrap(),
            (vec![0, 1, 2], vec![])
        );
    }

    fn near_dup_corpus() -> Vec<String> {
        // 0, 2 and 5 are near duplicates, 3 an exact copy of 1, 4 alone.
        let base: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        let edit = |k: usize| {
            let mut e = base.clone();
            e[k] = "changed".into();
            e.join(" ")
        };
        let other: String = (0..200).map(|i| format!("z{i} ")).collect();
        let alone: String = (0..200).map(|i| format!("q{i} ")).collect();
        vec![
            base.join(" "),
            other.clone(),
            edit(50),
            other,
            alone,
            edit(150),
        ]
    }

    #[test]
    fn one_call_clusters_equal_the_steps() {
        let texts = near_dup_corpus();
        let m = MinHasher::new(128, 5, 0).unwrap();
        let sigs = m.signatures(&texts);
        for exact in [false, true] {
            let (labels, failed) = clusters_of_texts(&texts, &m, &CFG, exact).unwrap();
            assert!(failed.is_empty());
            assert_eq!(labels, vec![0, 1, 0, 1, 4, 0]);
            let want = if exact {
                clusters_exact(&texts, 5, &sigs, 128, &CFG).unwrap().0
            } else {
                clusters(&sigs, 128, &CFG).unwrap()
            };
            assert_eq!(labels, want);
        }
    }

    #[test]
    fn failed_rows_are_left_out_and_are_their_own_clusters() {
        // What clusters_of_texts does with the failures of signature_batch
        // (whose failed rows hold zeros): the others cluster as if the
        // failed rows were not in the batch.
        let texts = near_dup_corpus();
        let m = MinHasher::new(128, 5, 0).unwrap();
        let mut sigs = m.signatures(&texts);
        sigs[..128].fill(0);
        sigs[3 * 128..4 * 128].fill(0);
        let failed: Failures = vec![(0, "bug".into()), (3, "bug".into())];
        for exact in [false, true] {
            let (labels, f) =
                clusters_without(&texts, &sigs, failed.clone(), &m, &CFG, exact).unwrap();
            assert_eq!(f, failed);
            // 0, the first of 0, 2 and 5, is gone: 2 is the first now.
            assert_eq!(labels, vec![0, 1, 2, 3, 4, 2]);
        }
        assert_eq!(surviving_rows(6, &failed), vec![1, 2, 4, 5]);
        assert_eq!(labels_with_gaps(3, &[], &[]), vec![0, 1, 2]);
    }

    #[test]
    fn a_pair_with_a_failed_text_is_never_a_duplicate() {
        let mut sims = vec![1.0, 1.0, 0.9];
        let pairs = [(0, 1), (1, 2), (2, 3)];
        unpair_failed(&mut sims, &pairs, &vec![(1, "bug".into())], 4);
        assert!(sims[0].is_nan() && sims[1].is_nan());
        assert_eq!(sims[2], 0.9);
        // NaN fails every threshold, the highest included.
        assert!(sims.iter().filter(|&&j| j >= 1e-300).count() == 1);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(clusters(&[1, 2, 3], 2, &CFG).is_err());
        let bad = LshConfig { bands: 20, ..CFG };
        assert!(clusters(&[0; 256], 128, &bad).is_err());
        assert!(labels_from_edges(2, &[(0, 2)]).is_err());
    }
}
