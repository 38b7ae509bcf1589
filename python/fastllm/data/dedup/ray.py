"""Near-duplicate clustering on a Ray cluster, with the same kernels.

Ray is an optional extra (``pip install 'fastllm[ray]'``). The steps are
those of :func:`fastllm.data.dedup.near_duplicate_clusters`, spread by Ray Data:

1. ``map_batches``: signatures (Rust, GIL released) and one row per
   ``(document, band)``: band, bucket key, document id, signature;
2. ``groupby(["band", "key"]).map_groups``: each bucket yields the star edges
   ``(smallest id, member)``, verified against the signatures when
   ``verify``, the same edges as the single-machine mode;
3. union-find over the edges on the driver (8 bytes per document).

The parameters are the one :class:`~fastllm.data.config.DedupConfig` of
the other modes, so the cluster ids equal the single-machine ones for the
same config. Exact verification (``verify="exact"``, the default) needs the
texts where the edges meet: when the driver has them (``data`` is a list of
texts, or ``texts=`` is given beside a Dataset) the unverified star edges
come back from Ray and each distinct pair's shingle-set Jaccard is computed
on the driver (only the candidates' texts are shingled again). A Dataset
alone has no texts on the driver, so there it takes ``verify="signature"``
(or ``"none"``): a bucket holds signatures, not texts, and exact
verification inside Ray would have to shuffle every candidate's shingle set
(about 8 bytes per word) once per band. Signature agreement estimates the
Jaccard with standard deviation ``sqrt(J * (1 - J) / num_perm)``: pairs
within a few hundredths of the threshold land on either side (a larger
``num_perm`` narrows that band).

A document whose signature fails on a worker (a panic in Rust, a bug) gets
no band rows, so it is in no bucket and is its own cluster; its id and the
message reach the driver through a named Ray actor that the first such
failure starts (nothing is started when nothing fails). With ``failures=``
they are appended there, else they are a RuntimeError (see
:mod:`fastllm._failures`); so are documents whose exact verification fails
on the driver.
"""

from __future__ import annotations

import uuid

import numpy as np

from fastllm import _core
from fastllm._failures import hand_over
from fastllm.data.config import DedupConfig
from fastllm.data.dedup.memory import (
    _as_str_list,
    _check_int,
    clusters_from_edges,
    lsh_plan,
    minhash,
)


class _Failures:
    """A Ray actor that collects ``(document id, message)`` of the documents
    whose signature failed on some worker."""

    def __init__(self):
        self.failed: list[tuple[int, str]] = []

    def add(self, failed: list[tuple[int, str]]) -> None:
        self.failed += failed

    def get(self) -> list[tuple[int, str]]:
        return sorted(self.failed)


def _report_failures(name: str, failed: list[tuple[int, str]]) -> None:
    """On a worker: hand ``failed`` to the actor ``name``, started by the
    first worker that needs it (detached: it outlives the task; the driver
    ends it). Synchronous, so it is done before the dataset is."""
    import ray

    sink = (
        ray.remote(_Failures)
        .options(name=name, get_if_exists=True, lifetime="detached", num_cpus=0)
        .remote()
    )
    ray.get(sink.add.remote(failed))


def _collect_failures(name: str) -> list[tuple[int, str]]:
    """On the driver, once the dataset is consumed: what the actor ``name``
    collected (none when no worker started it), and the actor ended."""
    import ray

    try:
        sink = ray.get_actor(name)
    except ValueError:
        return []
    failed = ray.get(sink.get.remote())
    ray.kill(sink)
    return failed


def _signature_rows(num_perm, ngram, seed, bands, rows, text_column, id_column, sink):
    """map_batches function: texts -> one row per (document, band); a
    document whose signature failed gets none and is reported to ``sink``."""

    def fn(batch: dict) -> dict:
        texts = [t if isinstance(t, str) else "" for t in batch[text_column].tolist()]
        ids = np.asarray(batch[id_column], dtype=np.uint64)
        failed: list[tuple[int, str]] = []
        sigs = minhash(texts, num_perm, ngram, seed, failures=failed)
        if failed:
            _report_failures(sink, [(int(ids[k]), m) for k, m in failed])
            ok = np.ones(len(ids), dtype=bool)
            ok[[k for k, _ in failed]] = False
            ids, sigs = ids[ok], np.ascontiguousarray(sigs[ok])
        keys = _core.band_keys(sigs, bands, rows)
        return {
            "band": np.tile(np.arange(bands, dtype=np.uint64), len(ids)),
            "key": keys.reshape(-1),
            "id": np.repeat(ids, bands),
            "sig": np.repeat(sigs, bands, axis=0),
        }

    return fn


def _bucket_edges(threshold, verify, num_perm):
    """map_groups function: one bucket -> star edges (smallest id, member)."""

    def fn(group: dict) -> dict:
        ids = np.asarray(group["id"], dtype=np.uint64)
        if len(ids) < 2:
            return {"u": np.zeros(0, np.uint64), "v": np.zeros(0, np.uint64)}
        sigs = np.asarray(group["sig"])
        first = int(np.argmin(ids))
        others = np.flatnonzero(np.arange(len(ids)) != first)
        if verify:
            # The same float comparison as the Rust kernel (lsh.rs).
            sim = (sigs[others] == sigs[first]).sum(axis=1) / num_perm
            others = others[sim >= threshold]
        return {"u": np.full(len(others), ids[first], np.uint64), "v": ids[others]}

    return fn


def near_duplicate_clusters(
    data,
    config: DedupConfig | None = None,
    *,
    text_column: str = "text",
    id_column: str = "id",
    batch_size: int = 4096,
    texts=None,
    failures: list | None = None,
) -> np.ndarray:
    """Cluster ids (int64, smallest id in the cluster) computed with Ray Data,
    with ``config``'s threshold, permutations, n-gram, seed, verification and
    bands x rows (default: ``DedupConfig()``).

    ``data`` is a list of texts (ids are their indexes) or a
    ``ray.data.Dataset`` with ``text_column`` and ``id_column`` (ids must be
    ``0 .. n-1``). Starts Ray locally when it is not running. ``texts``
    (with a Dataset): the same texts by id on the driver (a list or an Arrow
    column), for exact verification there (see the module docstring).
    ``failures``: a list that receives ``(id, message)`` of the documents a
    kernel failed on (see the module docstring).
    """
    import ray

    config = config or DedupConfig()
    if not isinstance(data, ray.data.Dataset):
        if texts is not None:
            raise ValueError("texts: give it only with a Dataset (a list of texts is its own)")
        texts = _as_str_list(data, "data")
    elif texts is not None:
        texts = _as_str_list(texts, "texts")
    _check_int("batch_size", batch_size, 1)
    mode, b, r = lsh_plan(config, exact_ok=texts is not None)
    threshold, num_perm, ngram, seed = config.threshold, config.num_perm, config.ngram, config.seed

    if isinstance(data, ray.data.Dataset):
        ds = data
        missing = {text_column, id_column} - set(ds.schema().names)
        if missing:
            raise ValueError(f"data: columns {sorted(missing)} are missing")
        n = ds.count()
    else:
        import pyarrow as pa

        n = len(texts)
        ds = ray.data.from_arrow(
            pa.table({id_column: np.arange(n, dtype=np.uint64), text_column: texts})
        )
    if n == 0:
        return np.zeros(0, dtype=np.int64)

    sink = f"fastllm-dedup-failures-{uuid.uuid4().hex}"
    rows_ds = ds.map_batches(
        _signature_rows(num_perm, ngram, seed, b, r, text_column, id_column, sink),
        batch_format="numpy",
        batch_size=batch_size,
    )
    edges = rows_ds.groupby(["band", "key"]).map_groups(
        _bucket_edges(float(threshold), mode == "signature", num_perm), batch_format="numpy"
    )
    us, vs = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    for batch in edges.iter_batches(batch_format="numpy"):
        us.append(np.asarray(batch["u"], dtype=np.uint64))
        vs.append(np.asarray(batch["v"], dtype=np.uint64))
    u, v = np.concatenate(us), np.concatenate(vs)
    failed = _collect_failures(sink)
    if len(u) and max(u.max(), v.max()) >= n:
        raise ValueError(f"data: {id_column} must be 0 .. n-1 (n = {n})")
    if mode == "exact":
        if len(texts) != n:
            raise ValueError(f"texts: {len(texts)} texts for {n} documents")
        labels = clusters_from_edges(
            n, u, v, texts=texts, threshold=threshold, ngram=ngram, failures=failed
        )
        failed.sort()
    else:
        labels = _core.union_find(n, u, v)
    hand_over("near_duplicate_clusters", failed, failures)
    return labels
