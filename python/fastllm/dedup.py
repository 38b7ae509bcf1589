"""Duplicate detection: exact content hashes and MinHash/LSH near duplicates.

Near duplicates, in four steps (all in Rust, whole batches, GIL released):

1. normalize: lowercase; letters, marks and digits make words, everything
   else (punctuation, symbols, whitespace) separates them; a character of a
   script written without spaces (Chinese, Japanese kana, Thai, ...) is a word
   of its own, so such text gets character n-grams.
2. shingle: word ``ngram``-grams joined by one space, hashed with xxh3-64
   (a document shorter than ``ngram`` words is one shingle).
3. minhash: ``(a*h + b) mod (2**61 - 1)`` per permutation, minimum per
   document; ``a, b`` from ``seed`` (splitmix64).
4. LSH: ``bands x rows`` chosen as datasketch does (:func:`lsh_params`);
   every member of a bucket is joined to the bucket's smallest document,
   optionally only when their signatures agree on ``>= threshold`` of the
   positions (``verify=True``) or when their shingle sets have exact Jaccard
   ``>= threshold`` (``verify="exact"``, in memory only); clusters by
   union-find.

Results depend only on the inputs and ``seed``, not on the thread count. For
corpora larger than memory see :mod:`fastllm.dedup_ooc`; on a Ray cluster
see :mod:`fastllm.dedup_ray`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from fastllm import _core
from fastllm._arrow import is_arrow, text_column

#: Weights of :func:`lsh_params` when candidates are verified: verification
#: removes the false positives that a low weight lets through, and missed
#: pairs are gone for good, so misses weigh more (datasketch's default, for
#: unverified candidates, is 0.5 / 0.5).
VERIFIED_WEIGHTS = (0.1, 0.9)


def content_hashes(texts: Sequence[str], normalize: bool = True) -> np.ndarray:
    """128-bit xxh3 hashes of ``texts`` as an ``(n, 2)`` uint64 array.

    With ``normalize`` (the default) texts that differ only in case,
    punctuation or whitespace hash alike. ``texts`` may be an Arrow
    string/binary column (pyarrow Array or ChunkedArray), read in place by
    Rust; a null hashes as the empty text.
    """
    return _core.content_hashes(_as_str_list(texts, "texts"), normalize)


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


def minhash(texts: Sequence[str], num_perm: int = 128, ngram: int = 5, seed: int = 0) -> np.ndarray:
    """MinHash signatures as an ``(len(texts), num_perm)`` uint64 array.

    Values are below ``2**61 - 1``; a text with no words (empty after
    normalization) has ``2**64 - 1`` everywhere. ``texts`` may be an Arrow
    column, as for :func:`content_hashes` (a null is the empty text).
    """
    texts = _as_str_list(texts, "texts")
    _check_int("num_perm", num_perm, 1)
    _check_int("ngram", ngram, 1)
    _check_int("seed", seed, 0, 2**64 - 1)
    return _core.minhash(texts, num_perm, ngram, seed)


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


def _verify_mode(verify) -> str:
    if verify is True or verify == "signature":
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
    texts: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 0,
    verify: bool | str = True,
    bands: int | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """Each text's cluster id (int64): the smallest index in its cluster.

    ``result != arange(n)`` marks the near duplicates to drop. ``bands`` and
    ``rows`` default to :func:`lsh_params` (with :data:`VERIFIED_WEIGHTS`
    when verifying). ``verify``: ``True`` (or ``"signature"``) keeps a
    candidate pair only when the two signatures agree on at least
    ``threshold`` of their positions; ``"exact"`` only when the two shingle
    sets have Jaccard ``>= threshold`` (slower, no estimation noise at the
    threshold); ``False`` keeps every LSH candidate.
    """
    texts = _as_str_list(texts, "texts")
    _check_threshold(threshold)
    _check_int("num_perm", num_perm, 2)
    _check_int("ngram", ngram, 1)
    _check_int("seed", seed, 0, 2**64 - 1)
    mode = _verify_mode(verify)
    b, r = _bands_rows(threshold, num_perm, verify, bands, rows)
    if mode == "exact":
        return _core.near_duplicate_clusters_exact(
            texts, float(threshold), num_perm, ngram, seed, b, r
        )
    return _core.near_duplicate_clusters(
        texts, float(threshold), num_perm, ngram, seed, mode == "signature", b, r
    )


def shingle_jaccard(texts: Sequence[str], pairs: np.ndarray, ngram: int = 5) -> np.ndarray:
    """Exact Jaccard (float64) of the shingle sets of ``texts[i]`` and
    ``texts[j]`` for each row ``(i, j)`` of ``pairs`` (two empty sets: 1.0)."""
    texts = _as_str_list(texts, "texts")
    _check_int("ngram", ngram, 1)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be an (m, 2) array, got shape {pairs.shape}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(texts)):
        raise ValueError(f"pairs: indexes must be in [0, {len(texts)})")
    p = pairs.astype(np.uint64)
    return _core.shingle_jaccard(
        texts, np.ascontiguousarray(p[:, 0]), np.ascontiguousarray(p[:, 1]), ngram
    )


def clusters_from_signatures(
    signatures: np.ndarray,
    threshold: float = 0.8,
    verify: bool = True,
    bands: int | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """:func:`near_duplicate_clusters` from signatures made by :func:`minhash`
    (``verify`` is True or False: exact verification needs the texts)."""
    sigs = _as_signatures(signatures)
    _check_threshold(threshold)
    if not isinstance(verify, bool):
        raise ValueError(f"verify must be True or False here, got {verify!r}")
    b, r = _bands_rows(threshold, sigs.shape[1], verify, bands, rows)
    return _core.clusters_from_signatures(sigs, float(threshold), b, r, bool(verify))


def near_duplicate_pairs(
    signatures: np.ndarray,
    threshold: float = 0.8,
    verify: bool = True,
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
    if not isinstance(verify, bool):
        raise ValueError(f"verify must be True or False here, got {verify!r}")
    b, r = _bands_rows(threshold, sigs.shape[1], verify, bands, rows)
    pairs = _core.lsh_pairs(sigs, float(threshold), b, r, bool(verify), max_bucket)
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


def dedup_stage(
    batch,
    text_column: str = "text",
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 0,
    verify: bool = True,
):
    """The pipeline stage: drop near duplicates from a ``pyarrow.Table`` (or
    RecordBatch), keeping the first document of each cluster. Returns the
    kept rows and a :class:`DedupReport`. The kept rows gain nothing; a
    caller that wants the cluster ids calls :func:`near_duplicate_clusters`.
    """
    import pyarrow as pa

    if text_column not in batch.schema.names:
        raise ValueError(
            f"text_column {text_column!r} is not a column of the batch "
            f"(columns: {batch.schema.names})"
        )
    col = batch.column(text_column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise ValueError(f"text_column {text_column!r} must be a string column, got {col.type}")
    # The column goes to Rust as it is (no to_pylist); a null text is an
    # empty document there (it clusters with other empties).
    labels = near_duplicate_clusters(col, threshold, num_perm, ngram, seed, verify)
    keep = labels == np.arange(len(labels))
    return batch.filter(pa.array(keep)), report_from_labels(labels)


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


def _check_signature_args(threshold, num_perm, ngram, seed, batch_size, verify, bands, rows):
    """The arguments shared by the out-of-core and Ray modes, checked; returns
    (bands, rows). ``verify`` must be a bool there: edges are made from
    signatures alone, without the texts."""
    _check_threshold(threshold)
    _check_int("num_perm", num_perm, 2)
    _check_int("ngram", ngram, 1)
    _check_int("seed", seed, 0, 2**64 - 1)
    _check_int("batch_size", batch_size, 1)
    if not isinstance(verify, bool):
        raise ValueError(
            f"verify must be True or False here (no texts at edge time), got {verify!r}"
        )
    return _bands_rows(threshold, num_perm, verify, bands, rows)


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
