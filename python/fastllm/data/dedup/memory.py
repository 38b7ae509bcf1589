"""Duplicate detection: exact content hashes and MinHash/LSH near duplicates.

Near duplicates, in four steps (all in Rust, whole batches, GIL released):

1. normalize: lowercase; letters, marks and digits make words, everything
   else (punctuation, symbols, whitespace) separates them; a character of a
   script written without spaces (Chinese, Japanese kana, Thai, ...) is a word
   of its own, so such text gets character n-grams.
2. shingle: word ``ngram``-grams joined by one space, hashed with xxh3-64
   (a document shorter than ``ngram`` words is one shingle).
3. minhash: multiply-shift, the top 32 bits of ``a*h + b mod 2**64`` per
   permutation (``a`` odd), minimum per document; ``a, b`` from ``seed``
   (splitmix64).
4. LSH: ``bands x rows`` chosen as datasketch does (:func:`lsh_params`);
   every member of a bucket is joined to the bucket's smallest document
   when their shingle sets have exact Jaccard ``>= threshold``
   (``verify="exact"``, what ``verify=True`` means wherever the texts are at
   hand), or when their signatures agree on ``>= threshold`` of the positions
   (``verify="signature"``, an estimate of the Jaccard with standard
   deviation ``sqrt(J * (1 - J) / num_perm)``, about 0.035 at J = 0.8 and 128
   permutations, so pairs near the threshold fall on either side); clusters
   by union-find.

Results depend only on the inputs and ``seed``, not on the thread count.

A kernel that panics on a document (a bug; ``rust/src/guard.rs``) fails
that document alone. The functions that read texts take ``failures=``: a
list that receives ``(row, panic message)`` of those documents, whose
results are blank (zeros) and which take part in no cluster (each is its
own); the caller drops them. Without the list such a document is a
RuntimeError naming it (see :mod:`fastllm._failures`). For
corpora larger than memory see :mod:`fastllm.data.dedup.disk`; on a Ray cluster
see :mod:`fastllm.data.dedup.ray`. The three modes take the one
:class:`~fastllm.data.config.DedupConfig` (threshold, permutations, n-gram,
seed, verification, bands x rows); the building blocks below it
(:func:`minhash`, :func:`clusters_from_signatures`, ...) take their own
arguments. ``DedupConfig.build()`` is :class:`DedupStage`: exact then near
duplicates dropped from one Arrow table, the rule the pipeline applies
across a whole run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from fastllm import _core
from fastllm._failures import hand_over
from fastllm.config import builder
from fastllm.data.config import DedupConfig
from fastllm.io.arrow import is_arrow, text_column

#: Weights of :func:`lsh_params` when candidates are verified: verification
#: removes the false positives that a low weight lets through, and missed
#: pairs are gone for good, so misses weigh more (datasketch's default, for
#: unverified candidates, is 0.5 / 0.5). With exact verification precision
#: is 1 by construction and these weights only trade verification work for
#: candidate recall: at threshold 0.8 and 128 permutations they pick 14 x 9,
#: which makes a pair a candidate with probability 0.87 at Jaccard 0.80, 0.975
#: at 0.85 and 0.999 at 0.9 (0.5 / 0.5 picks 9 x 13: 0.40, 0.69, 0.93), for
#: 3% of the pairs at Jaccard 0.5. More permutations sharpen that curve.
VERIFIED_WEIGHTS = (0.1, 0.9)


def content_hashes(
    texts: Sequence[str], normalize: bool = True, *, failures: list | None = None
) -> np.ndarray:
    """128-bit xxh3 hashes of ``texts`` as an ``(n, 2)`` uint64 array.

    With ``normalize`` (the default) texts that differ only in case,
    punctuation or whitespace hash alike. ``texts`` may be an Arrow
    string/binary column (pyarrow Array or ChunkedArray), read in place by
    Rust; a null hashes as the empty text. ``failures``: see the module
    docstring (a failed row is zeros).
    """
    hashes, failed = _core.content_hashes(_as_str_list(texts, "texts"), normalize)
    hand_over("content_hashes", failed, failures)
    return hashes


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """The keep mask of exact dedup: True at the first row of each distinct
    ``(n, 2)`` content hash (:func:`content_hashes`), in row order."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    keep = np.zeros(len(hashes), dtype=bool)
    if len(hashes):
        # One 16-byte key per row; return_index is the first occurrence, so
        # no per-document Python loop.
        keys = hashes.view(np.dtype((np.void, 16))).ravel()
        keep[np.unique(keys, return_index=True)[1]] = True
    return keep


def exact_duplicates(texts: Sequence[str], normalize: bool = True) -> np.ndarray:
    """For each text, the index of the first text with the same content hash
    (its own index when it is the first). ``result != arange(n)`` marks the
    duplicates to drop."""
    hashes = np.ascontiguousarray(content_hashes(texts, normalize))
    if len(hashes) == 0:
        return np.zeros(0, dtype=np.int64)
    # One 16-byte key per text; np.unique's return_index is the first
    # occurrence, so no per-document Python loop.
    keys = hashes.view(np.dtype((np.void, 16))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.ravel()].astype(np.int64)


def minhash(
    texts: Sequence[str],
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 0,
    *,
    failures: list | None = None,
) -> np.ndarray:
    """MinHash signatures as an ``(len(texts), num_perm)`` uint64 array.

    Values are below ``2**32``; a text with no words (empty after
    normalization) has ``2**64 - 1`` everywhere. ``texts`` may be an Arrow
    column, as for :func:`content_hashes` (a null is the empty text).
    ``failures``: see the module docstring (a failed row is zeros).
    """
    texts = _as_str_list(texts, "texts")
    _check_int("num_perm", num_perm, 1)
    _check_int("ngram", ngram, 1)
    _check_int("seed", seed, 0, 2**64 - 1)
    sigs, failed = _core.minhash(texts, num_perm, ngram, seed)
    hand_over("minhash", failed, failures)
    return sigs


def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimizing
    ``fp_weight * P(false positive) + fn_weight * P(false negative)``, the
    probabilities integrated over Jaccard below / above ``threshold``
    (datasketch's ``_optimal_param``, same result)."""
    _check_threshold(threshold, upper_open=True)
    _check_int("num_perm", num_perm, 2, 4096)
    return _core.lsh_params(
        float(threshold), num_perm, float(false_positive_weight), float(false_negative_weight)
    )


def _verify_mode(verify, texts_at_hand: bool = True) -> str:
    """``"exact"``, ``"signature"`` or ``"none"``; ``True`` is the best
    verification the caller can do: exact with the texts, else signature."""
    if verify is True:
        return "exact" if texts_at_hand else "signature"
    if verify == "signature":
        return "signature"
    if verify is False or verify == "none":
        return "none"
    if verify == "exact":
        return "exact"
    raise ValueError(f'verify must be True, False, "signature", "exact" or "none", got {verify!r}')


def _bands_rows(threshold, num_perm, verify, bands, rows):
    if (bands is None) != (rows is None):
        raise ValueError("bands and rows must be given together (or neither)")
    if bands is None:
        weights = VERIFIED_WEIGHTS if _verify_mode(verify) != "none" else (0.5, 0.5)
        return lsh_params(min(threshold, 0.99), num_perm, *weights)
    _check_int("bands", bands, 1)
    _check_int("rows", rows, 1)
    if bands * rows > num_perm:
        raise ValueError(f"bands * rows must be <= num_perm ({num_perm}), got {bands} * {rows}")
    return bands, rows


def near_duplicate_clusters(
    texts: Sequence[str], config: DedupConfig | None = None, *, failures: list | None = None
) -> np.ndarray:
    """Each text's cluster id (int64): the smallest index in its cluster,
    with ``config``'s threshold, permutations, n-gram, seed, verification
    and bands x rows (default: ``DedupConfig()``).

    ``result != arange(n)`` marks the near duplicates to drop. Bands and
    rows default to :func:`lsh_params` (with :data:`VERIFIED_WEIGHTS`
    when verifying). ``verify``: ``"exact"`` (the default) keeps a candidate
    pair only when the two shingle sets have Jaccard ``>= threshold`` (the
    candidates' texts are shingled again, in parallel, and their sorted hash
    sets merged; no estimation noise at the threshold); ``"signature"`` only
    when the two signatures agree on at least ``threshold`` of their
    positions (cheaper, an estimate); ``"none"`` keeps every LSH candidate.
    ``failures``: see the module docstring; the other texts cluster as if
    those were not there.
    """
    texts = _as_str_list(texts, "texts")
    mode, b, r = lsh_plan(config)
    c = config or DedupConfig()
    if mode == "exact":
        labels, failed = _core.near_duplicate_clusters_exact(
            texts, float(c.threshold), c.num_perm, c.ngram, c.seed, b, r
        )
    else:
        labels, failed = _core.near_duplicate_clusters(
            texts, float(c.threshold), c.num_perm, c.ngram, c.seed, mode == "signature", b, r
        )
    hand_over("near_duplicate_clusters", failed, failures)
    return labels


def lsh_plan(config: DedupConfig | None = None, exact_ok: bool = True) -> tuple[str, int, int]:
    """(verify mode, bands, rows) of ``config``: its bands x rows, or those
    :func:`lsh_params` picks (with :data:`VERIFIED_WEIGHTS` when verifying).
    ``exact_ok``: the caller has the texts where the edges meet (a
    ``verify="exact"`` it cannot do is a ValueError)."""
    c = config or DedupConfig()
    if c.verify == "exact" and not exact_ok:
        raise ValueError(
            'verify="exact" needs the texts where the edges meet (give texts=, or use '
            'verify="signature": signature agreement, or "none")'
        )
    if c.bands:
        return c.verify, c.bands, c.rows
    return c.verify, *_bands_rows(c.threshold, c.num_perm, c.verify, None, None)


def shingle_jaccard(
    texts: Sequence[str], pairs: np.ndarray, ngram: int = 5, *, failures: list | None = None
) -> np.ndarray:
    """Exact Jaccard (float64) of the shingle sets of ``texts[i]`` and
    ``texts[j]`` for each row ``(i, j)`` of ``pairs`` (two empty sets: 1.0).
    ``failures``: see the module docstring (rows of ``texts``; a pair with
    one of them is NaN, below every threshold)."""
    texts = _as_str_list(texts, "texts")
    _check_int("ngram", ngram, 1)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be an (m, 2) array, got shape {pairs.shape}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(texts)):
        raise ValueError(f"pairs: indexes must be in [0, {len(texts)})")
    p = pairs.astype(np.uint64)
    sims, failed = _core.shingle_jaccard(
        texts, np.ascontiguousarray(p[:, 0]), np.ascontiguousarray(p[:, 1]), ngram
    )
    hand_over("shingle_jaccard", failed, failures)
    return sims


def clusters_from_signatures(
    signatures: np.ndarray,
    threshold: float = 0.8,
    verify: bool | str = True,
    bands: int | None = None,
    rows: int | None = None,
    *,
    texts: Sequence[str] | None = None,
    ngram: int = 5,
    rows_of_texts: np.ndarray | None = None,
    failures: list | None = None,
) -> np.ndarray:
    """:func:`near_duplicate_clusters` from signatures made by :func:`minhash`.

    Without ``texts`` only signatures are at hand: ``verify`` is True (or
    ``"signature"``) or False. With ``texts`` (row ``i`` of ``signatures`` is
    ``texts[i]``; a list or an Arrow column, read in place) ``verify=True``
    means exact shingle-set Jaccard, and the result equals
    :func:`near_duplicate_clusters` on the texts; only the candidates' texts
    are shingled again (with ``ngram``, which must be the one the signatures
    were made with). ``rows_of_texts[i]``, when given, is the row of
    ``texts`` that signature ``i`` belongs to (a subset of a larger column,
    without copying it). ``failures`` (exact verification): see the module
    docstring, with rows of ``signatures``."""
    sigs = _as_signatures(signatures)
    _check_threshold(threshold)
    if texts is None:
        mode = _signature_verify(verify)
    else:
        mode = _verify_mode(verify)
        texts = _as_str_list(texts, "texts")
        if rows_of_texts is None and len(texts) != len(sigs):
            raise ValueError(f"texts: {len(texts)} texts for {len(sigs)} signatures")
    b, r = _bands_rows(threshold, sigs.shape[1], verify, bands, rows)
    if mode != "exact":
        return _core.clusters_from_signatures(sigs, float(threshold), b, r, mode == "signature")
    u, v = _core.lsh_edges(sigs, float(threshold), b, r, False)
    return clusters_from_edges(
        len(sigs),
        u,
        v,
        texts=texts,
        threshold=threshold,
        ngram=ngram,
        rows_of_texts=rows_of_texts,
        failures=failures,
    )


def clusters_from_edges(
    n: int,
    u: np.ndarray,
    v: np.ndarray,
    *,
    texts: Sequence[str] | None = None,
    threshold: float = 0.8,
    ngram: int = 5,
    rows_of_texts: np.ndarray | None = None,
    failures: list | None = None,
) -> np.ndarray:
    """Cluster ids (smallest member) of ``n`` documents joined by the edges
    ``u[k] -- v[k]``. With ``texts``, an edge counts only when the exact
    Jaccard of the two texts' ``ngram`` shingle sets is ``>= threshold`` (each
    distinct pair is checked once): how candidate edges from LSH buckets, made
    anywhere (this process, out of core, Ray), are verified exactly.
    Document ``i``'s text is ``texts[rows_of_texts[i]]`` when that is given,
    else ``texts[i]``. ``failures``: see the module docstring (document
    numbers, ``0 .. n-1``; such a document is in no verified edge)."""
    _check_int("n", n, 0)
    u = np.asarray(u, dtype=np.uint64)
    v = np.asarray(v, dtype=np.uint64)
    if u.shape != v.shape or u.ndim != 1:
        raise ValueError(f"u and v must be 1-D arrays of one length, got {u.shape} and {v.shape}")
    if texts is not None and len(u):
        pairs = np.unique(np.stack([u, v], axis=1), axis=0)
        if len(pairs) and pairs.max() >= n:
            raise ValueError(f"edges: a document index is >= n ({n})")
        failed: list[tuple[int, str]] = []
        if rows_of_texts is None:
            sims = shingle_jaccard(texts, pairs, ngram, failures=failed)
        else:
            rows_of_texts = np.asarray(rows_of_texts)
            if rows_of_texts.shape != (n,):
                raise ValueError(f"rows_of_texts: {rows_of_texts.shape[0]} rows for {n} documents")
            sims = shingle_jaccard(
                texts, rows_of_texts[pairs.astype(np.intp)], ngram, failures=failed
            )
            if failed:  # rows of texts -> document numbers
                msg = dict(failed)
                docs = np.flatnonzero(np.isin(rows_of_texts, list(msg)))
                failed = [(int(i), msg[int(rows_of_texts[i])]) for i in docs]
        hand_over("clusters_from_edges", failed, failures)
        pairs = pairs[sims >= threshold]  # NaN (a failed text) is never >= threshold
        u, v = pairs[:, 0], pairs[:, 1]
    return _core.union_find(n, np.ascontiguousarray(u), np.ascontiguousarray(v))


def _signature_verify(verify) -> str:
    """The verify mode where only signatures are at hand."""
    if isinstance(verify, str) and verify == "exact":
        raise ValueError(
            'verify="exact" needs the texts; here verify is True, "signature" or False'
        )
    return _verify_mode(verify, texts_at_hand=False)


def near_duplicate_pairs(
    signatures: np.ndarray,
    threshold: float = 0.8,
    verify: bool | str = True,
    bands: int | None = None,
    rows: int | None = None,
    max_bucket: int = 10_000,
) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, that shares an LSH bucket (and, with
    ``verify``, whose signatures agree on ``>= threshold`` of the positions),
    as a sorted ``(m, 2)`` int64 array. Quadratic in bucket size: a bucket of
    more than ``max_bucket`` documents is a ValueError (use
    :func:`clusters_from_signatures`, which is linear, for removal)."""
    sigs = _as_signatures(signatures)
    _check_threshold(threshold)
    _check_int("max_bucket", max_bucket, 2)
    mode = _signature_verify(verify)
    b, r = _bands_rows(threshold, sigs.shape[1], verify, bands, rows)
    pairs = _core.lsh_pairs(sigs, float(threshold), b, r, mode == "signature", max_bucket)
    return pairs.astype(np.int64)


@dataclass
class DedupReport:
    """What a dedup stage did: documents in, duplicate clusters (of two or
    more documents), documents removed and kept."""

    documents_in: int
    clusters: int
    removed: int
    kept: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def report_from_labels(labels: np.ndarray) -> DedupReport:
    """The report for cluster ids where ``labels[i] == i`` marks a kept document."""
    labels = np.asarray(labels)
    n = len(labels)
    keep = labels == np.arange(n)
    sizes = np.bincount(labels, minlength=n) if n else np.zeros(0, dtype=np.int64)
    kept = int(keep.sum())
    return DedupReport(
        documents_in=n, clusters=int((sizes >= 2).sum()), removed=n - kept, kept=kept
    )


def dedup_stage(batch, config: DedupConfig | None = None, text_column: str = "text"):
    """Drop near duplicates from a ``pyarrow.Table`` (or RecordBatch),
    keeping the first document of each cluster (``config``: see
    :func:`near_duplicate_clusters`). Returns the kept rows and a
    :class:`DedupReport`. The kept rows gain nothing; a caller that wants
    the cluster ids calls :func:`near_duplicate_clusters`.
    """
    import pyarrow as pa

    col = _string_column(batch, text_column)
    # The column goes to Rust as it is (no to_pylist); a null text is an
    # empty document there (it clusters with other empties).
    labels = near_duplicate_clusters(col, config)
    keep = labels == np.arange(len(labels))
    return batch.filter(pa.array(keep)), report_from_labels(labels)


def _string_column(batch, text_column: str):
    import pyarrow as pa

    if text_column not in batch.schema.names:
        raise ValueError(
            f"text_column {text_column!r} is not a column of the batch "
            f"(columns: {batch.schema.names})"
        )
    col = batch.column(text_column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise ValueError(f"text_column {text_column!r} must be a string column, got {col.type}")
    return col


class DedupStage:
    """``DedupConfig.build()``: a :class:`~fastllm.data.stages.Stage` that
    drops exact duplicates (normalized content hash, first kept), then near
    duplicates among the rest (first of each cluster kept), from one table;
    counts ``exact_duplicate`` and ``near_duplicate``; when a kernel failed
    on some documents, also ``internal_error``, and they are named by id in
    a third item (report lines). ``enabled``, ``exact`` and ``near`` turn the parts off;
    ``mode`` does not apply (one table is in memory)."""

    name = "dedup"

    def __init__(self, config: DedupConfig):
        self.config = config
        lsh_plan(config)  # bands x rows checked now, not at the first batch

    def __call__(self, table):
        import pyarrow as pa

        from fastllm.data.filters import internal_errors

        c = self.config
        col = _string_column(table, "text")
        keep = np.ones(len(table), dtype=bool)
        counts: dict[str, int] = {}
        if not (c.enabled and len(table)):
            return table, counts
        errors: list[str] = []
        failed = np.zeros(len(table), dtype=bool)
        if c.exact:
            hash_failed: list[tuple[int, str]] = []
            hashes = content_hashes(col, failures=hash_failed)
            if hash_failed:  # not the first of anything (their hashes are zeros)
                rows = [k for k, _ in hash_failed]
                failed[rows] = True
                errors += internal_errors(table, hash_failed, "content_hashes")
                ok = np.flatnonzero(~failed)
                keep[:] = False
                keep[ok[first_occurrences(hashes[ok])]] = True
            else:
                keep = first_occurrences(hashes)
            if (n := int((~keep & ~failed).sum())) > 0:
                counts["exact_duplicate"] = n
        if c.near:
            idx = np.flatnonzero(keep)
            near_failed: list[tuple[int, str]] = []
            labels = near_duplicate_clusters(col.take(pa.array(idx)), c, failures=near_failed)
            near = labels != np.arange(len(idx))
            keep[idx[near]] = False
            if near.any():
                counts["near_duplicate"] = int(near.sum())
            if near_failed:
                rows = [int(idx[k]) for k, _ in near_failed]
                failed[rows] = True
                named = [(r, m) for r, (_, m) in zip(rows, near_failed, strict=True)]
                errors += internal_errors(table, named, "near dedup")
        kept = table.filter(pa.array(keep & ~failed))
        if not failed.any():
            return kept, counts
        counts["internal_error"] = int(failed.sum())
        return kept, counts, errors


@builder(DedupConfig)
def _build_stage(config: DedupConfig) -> DedupStage:
    return DedupStage(config)


# --- argument checks: Python owns the messages -------------------------------


def _as_signatures(signatures) -> np.ndarray:
    sigs = np.asarray(signatures)
    if sigs.ndim != 2 or sigs.dtype != np.uint64:
        raise ValueError(
            f"signatures must be an (n, num_perm) uint64 array, got {sigs.dtype} {sigs.shape}"
        )
    if sigs.shape[1] < 2:
        raise ValueError(f"signatures must have num_perm >= 2 columns, got {sigs.shape[1]}")
    return np.ascontiguousarray(sigs)


def _check_threshold(threshold, upper_open: bool = False) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    hi_ok = threshold < 1 if upper_open else threshold <= 1
    if not (math.isfinite(threshold) and threshold > 0 and hi_ok):
        rng = "(0, 1)" if upper_open else "(0, 1]"
        raise ValueError(f"threshold must be in {rng}, got {threshold}")


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _as_str_list(texts: Sequence[str], name: str) -> list[str]:
    if is_arrow(texts):
        return text_column(texts, name)
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of str, not a single str")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, expected str")
    return texts
