"""Out-of-core near-duplicate removal over input shards.

For corpora larger than memory: only one shard's signatures (plus one sorted
run per shard, streamed) are ever in memory, and every step leaves files in
``work_dir`` so that a rerun after a crash skips what is finished.

``work_dir`` layout::

    config.json              the parameters; a rerun with others is an error
    sig/00000.npy            signatures of shard 0, (docs, num_perm) uint64
    sets/00000.npz           verify="exact": shingle sets of shard 0's
                             documents in some edge (ids, offsets, hashes,
                             and the ids and messages of failed ones)
    runs/00000.run           its (band, key, doc) records, sorted (Rust)
    shards/00000.json        written last: shard 0 is done (docs, bytes,
                             the documents whose signature failed)
    edges.bin                k-way merge of all runs: star edges per bucket
    failures.json            [global id, message] of every failed document
    labels.npy               cluster id of every document (global index)
    report.json              documents in, clusters, removed, kept

Steps: (1) per shard, signatures and band keys (Rust, GIL released) are
written as a sorted run; (2) the runs are merged externally into candidate
edges ``(bucket minimum, member)``, the same edges as the in-memory mode;
(3) with ``verify`` (``True`` or ``"exact"``), each shard is read again and
the sorted shingle-hash sets of its documents that are in some edge are
written to ``sets/``; an edge is kept when the exact Jaccard of its two sets
is ``>= threshold``, one pair of shards' sets in memory at a time (with
``verify="signature"``, when the two signatures agree on ``>= threshold``
of the positions instead, no second read); (4) union-find over the edges;
(5) a removal pass writes each shard's kept documents to ``output_dir``
(same file name).

A document a kernel fails on (a panic in Rust, a bug: its signature or its
shingle set) takes part in no edge and is its own cluster; it is listed in
``failures.json`` and left out of ``output_dir`` (``removed`` in the
report counts it). :func:`dedup_shards` hands the list to its caller's
``failures=`` (without one it is a RuntimeError; see
:mod:`fastllm._failures`).

Every file is written with :mod:`fastllm.io.atomic` (a temporary name,
fsynced, renamed when complete). Document ids are global indexes in input
order, so the result equals :func:`fastllm.data.dedup.near_duplicate_clusters`
on the concatenated inputs with the same :class:`~fastllm.data.config.DedupConfig`.
Inputs are Parquet (``.parquet``) or JSON lines (``.jsonl``, ``.jsonl.gz``)
with a string column ``text_column``, read by
:func:`fastllm.io.readers.text_batches` (row ``i`` is document ``i``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastllm import _core
from fastllm._failures import hand_over
from fastllm.data.config import DedupConfig
from fastllm.data.dedup.memory import (
    DedupReport,
    _check_int,
    lsh_plan,
    minhash,
    report_from_labels,
)
from fastllm.io.atomic import atomic_open, atomic_path, write_json_atomic
from fastllm.io.readers import open_binary, text_batches

FORMAT_VERSION = 2  # 2: multiply-shift signatures


def _write_json(path: Path, obj) -> None:
    write_json_atomic(path, obj, indent=1, sort_keys=True)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.save(f, arr)


def _kind(path: Path) -> str:
    name = path.name
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        return "jsonl"
    raise ValueError(f"input_paths: {path} is neither .parquet nor .jsonl / .jsonl.gz")


def _signatures_for_shard(path: Path, text_column: str, batch_size: int, config: DedupConfig):
    """Signatures of one shard, its size in bytes of text, and ``(row in the
    shard, message)`` of the documents whose signature failed."""
    chunks, nbytes, failed, pos = [], 0, [], 0
    for texts in text_batches(path, text_column, batch_size):
        if isinstance(texts, list):
            nbytes += sum(len(t.encode("utf-8")) for t in texts)
        elif len(texts):
            import pyarrow.compute as pc

            nbytes += int(pc.sum(pc.binary_length(texts)).as_py() or 0)
        f: list[tuple[int, str]] = []
        chunks.append(minhash(texts, config.num_perm, config.ngram, config.seed, failures=f))
        failed += [(pos + k, m) for k, m in f]
        pos += len(texts)
    if chunks:
        return np.concatenate(chunks), nbytes, failed
    return np.zeros((0, config.num_perm), dtype=np.uint64), nbytes, failed


def _by_shard_pair(u, v, offsets, load, check):
    """Keep the edges for which ``check(a, b, part)`` is true, where ``a`` and
    ``b`` are what ``load`` gives for the shards of ``u[part]`` and
    ``v[part]``: the edges are grouped by shard pair so that only two shards'
    data are in memory at once."""
    su = np.searchsorted(offsets, u, side="right") - 1
    sv = np.searchsorted(offsets, v, side="right") - 1
    order = np.lexsort((sv, su))
    keep = np.zeros(len(u), dtype=bool)
    cache: dict[int, object] = {}

    def cached(s):
        if s not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            cache[s] = load(s)
        return cache[s]

    pairs = np.stack([su[order], sv[order]], axis=1)
    starts = np.flatnonzero(np.any(np.diff(pairs, axis=0) != 0, axis=1)) + 1
    for idx in np.split(order, starts):
        if len(idx) == 0:
            continue
        a, b = cached(int(su[idx[0]])), cached(int(sv[idx[0]]))
        for lo in range(0, len(idx), 1 << 16):
            part = idx[lo : lo + (1 << 16)]
            keep[part] = check(a, b, part)
    return u[keep], v[keep]


def _verify(u, v, offsets, sig_path, threshold, num_perm):
    """Keep edges whose signatures agree on >= threshold of the positions."""
    su = np.searchsorted(offsets, u, side="right") - 1
    sv = np.searchsorted(offsets, v, side="right") - 1

    def check(a, b, part):
        x = a[u[part] - offsets[su[part]]]
        y = b[v[part] - offsets[sv[part]]]
        # The same float comparison as the Rust kernel (lsh.rs).
        return (x == y).sum(axis=1) / num_perm >= threshold

    return _by_shard_pair(u, v, offsets, lambda s: np.load(sig_path(s)), check)


def _write_candidate_sets(u, v, offsets, inputs, set_path, text_column, batch_size, ngram):
    """Per shard, the sorted shingle-hash sets of its documents that are in
    some edge, as ``ids`` (global, sorted), ``offsets``, ``hashes``, and the
    global ids and messages of those whose shingling failed (``failed_ids``,
    ``failed_msgs``; empty sets); a shard whose file exists is skipped
    (resume)."""
    needed = np.unique(np.concatenate([u, v]))
    shard_of = np.searchsorted(offsets, needed, side="right") - 1
    for i, path in enumerate(inputs):
        target = set_path(i)
        if target.exists():
            continue
        ids = needed[shard_of == i]
        local = ids - offsets[i]
        offs, hashes, total, pos = [np.zeros(1, np.uint64)], [], 0, 0
        failed: list[tuple[int, str]] = []
        if len(ids):
            for texts in text_batches(path, text_column, batch_size):
                lo, hi = np.searchsorted(local, [pos, pos + len(texts)])
                if hi > lo:
                    which = np.ascontiguousarray(local[lo:hi] - pos, dtype=np.uint64)
                    o, h, bad = _core.shingle_sets(texts, ngram, which)
                    offs.append(o[1:] + np.uint64(total))
                    hashes.append(h)
                    total += len(h)
                    failed += [(int(offsets[i]) + pos + k, m) for k, m in bad]
                pos += len(texts)
        with atomic_open(target) as f:
            np.savez(
                f,
                ids=ids.astype(np.uint64),
                offsets=np.concatenate(offs),
                hashes=np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
                failed_ids=np.array([k for k, _ in failed], np.uint64),
                failed_msgs=np.array([m for _, m in failed], np.str_),
            )


def _set_failures(z) -> list[tuple[int, str]]:
    """The failed documents a ``sets/`` file lists (none in files written
    before it listed them)."""
    if "failed_ids" not in z.files:
        return []
    return [(int(k), str(m)) for k, m in zip(z["failed_ids"], z["failed_msgs"], strict=True)]


def _verify_exact(u, v, offsets, set_path, threshold):
    """Keep edges whose two shingle sets have Jaccard >= threshold (an edge
    with a document whose shingling failed is never kept)."""

    def load(s):
        with np.load(set_path(s)) as z:
            bad = np.array([k for k, _ in _set_failures(z)], np.uint64)
            return z["ids"], z["offsets"], z["hashes"], bad

    def check(a, b, part):
        ia = np.searchsorted(a[0], u[part]).astype(np.uint64)
        ib = np.searchsorted(b[0], v[part]).astype(np.uint64)
        sims = _core.set_table_jaccard(a[1], a[2], b[1], b[2], ia, ib)
        ok = sims >= threshold
        if len(a[3]) or len(b[3]):
            ok &= ~np.isin(u[part], a[3]) & ~np.isin(v[part], b[3])
        return ok

    return _by_shard_pair(u, v, offsets, load, check)


def dedup_shards(
    input_paths: Sequence[str | os.PathLike],
    work_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    config: DedupConfig | None = None,
    *,
    text_column: str = "text",
    batch_size: int = 10_000,
    failures: list | None = None,
) -> DedupReport:
    """Near-duplicate removal over shards that need not fit in memory together,
    with ``config``'s threshold, permutations, n-gram, seed, verification and
    bands x rows (default: ``DedupConfig()``).

    Writes kept documents of each input to ``output_dir`` (same file name;
    skipped when ``output_dir`` is None), leaves ``work_dir/labels.npy``
    (every document's cluster id, global index) and returns the report.
    Rerunning with the same arguments resumes where a previous run stopped.
    ``failures``: a list that receives ``(global index, message)`` of the
    documents a kernel failed on (see the module docstring); without one,
    such documents are a RuntimeError.
    """
    if isinstance(input_paths, (str, os.PathLike)):
        raise TypeError("input_paths must be a sequence of paths, not a single path")
    config = config or DedupConfig()
    inputs = [Path(p) for p in input_paths]
    for p in inputs:
        _kind(p)
        if not p.is_file():
            raise FileNotFoundError(f"input_paths: no such file: {p}")
    if len({p.name for p in inputs}) != len(inputs) and output_dir is not None:
        raise ValueError("input_paths: file names must be distinct (outputs reuse them)")
    _check_int("batch_size", batch_size, 1)
    mode, b, r = lsh_plan(config, exact_ok=True)
    threshold, num_perm, ngram, seed = config.threshold, config.num_perm, config.ngram, config.seed

    work = Path(work_dir)
    for sub in ("sig", "runs", "shards", "sets"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    settings = {
        "format_version": FORMAT_VERSION,
        "inputs": [str(p.resolve()) for p in inputs],
        "threshold": float(threshold),
        "num_perm": num_perm,
        "ngram": ngram,
        "seed": seed,
        "verify": mode,
        "bands": b,
        "rows": r,
        "text_column": text_column,
    }
    cfg_path = work / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        diff = sorted(k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k))
        if diff:
            raise ValueError(
                f"work_dir {work} holds a run with other settings ({', '.join(diff)}); "
                "use a fresh work_dir"
            )
    else:
        _write_json(cfg_path, settings)

    sig_path = lambda i: work / "sig" / f"{i:05d}.npy"  # noqa: E731
    run_path = lambda i: work / "runs" / f"{i:05d}.run"  # noqa: E731
    set_path = lambda i: work / "sets" / f"{i:05d}.npz"  # noqa: E731

    # (1) signatures and sorted runs, shard by shard; finished shards skipped.
    counts = []
    failed: list[tuple[int, str]] = []
    offset = 0
    for i, path in enumerate(inputs):
        done = work / "shards" / f"{i:05d}.json"
        if done.exists():
            marker = json.loads(done.read_text())
            counts.append(marker["docs"])
            failed += [(int(k), str(m)) for k, m in marker.get("failed", [])]
            offset += counts[-1]
            continue
        sigs, nbytes, bad = _signatures_for_shard(path, text_column, batch_size, config)
        n = len(sigs)
        keys = _core.band_keys(sigs, b, r) if n else np.zeros((0, b), dtype=np.uint64)
        docs = np.arange(offset, offset + n, dtype=np.uint64)
        if bad:  # no signature, no bucket: in no edge
            ok = np.ones(n, dtype=bool)
            ok[[k for k, _ in bad]] = False
            keys, docs = keys[ok], docs[ok]
        band = np.tile(np.arange(b, dtype=np.uint64), len(docs))
        doc = np.repeat(docs, b)
        _save_npy(sig_path(i), sigs)
        _core.write_run(str(run_path(i)), band, keys.reshape(-1), doc)
        del sigs, keys, band, doc
        bad = [(offset + k, m) for k, m in bad]
        marker = {"path": str(path), "docs": n, "bytes": nbytes, "offset": offset}
        _write_json(done, {**marker, "failed": [list(f) for f in bad]})
        failed += bad
        counts.append(n)
        offset += n
    total = offset
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)

    # (2)-(4) edges, verification, union-find.
    labels_path = work / "labels.npy"
    failures_path = work / "failures.json"
    if labels_path.exists():
        labels = np.load(labels_path)
        if failures_path.exists():  # written before labels.npy
            failed = [(int(k), str(m)) for k, m in json.loads(failures_path.read_text())]
    else:
        edges_path = work / "edges.bin"
        if not edges_path.exists():
            _core.merge_runs([str(run_path(i)) for i in range(len(inputs))], str(edges_path))
        u, v = _core.read_edges(str(edges_path))
        if mode == "signature" and len(u):
            u, v = _verify(u, v, offsets[:-1], sig_path, float(threshold), num_perm)
        elif mode == "exact" and len(u):
            _write_candidate_sets(
                u, v, offsets[:-1], inputs, set_path, text_column, batch_size, ngram
            )
            u, v = _verify_exact(u, v, offsets[:-1], set_path, float(threshold))
            for i in range(len(inputs)):
                with np.load(set_path(i)) as z:
                    failed += _set_failures(z)
        labels = _core.union_find(total, np.ascontiguousarray(u), np.ascontiguousarray(v))
        failed.sort()
        _write_json(failures_path, [list(f) for f in failed])
        _save_npy(labels_path, labels)
    hand_over("dedup_shards", failed, failures)
    dropped = np.zeros(total, dtype=bool)
    dropped[[k for k, _ in failed]] = True

    # (5) removal pass.
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(inputs):
            target = out / path.name
            if target.exists():
                continue
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            keep = (labels[lo:hi] == np.arange(lo, hi)) & ~dropped[lo:hi]
            _write_kept(path, target, keep, text_column, batch_size)

    report = report_from_labels(labels)
    if failed:  # their own clusters, but not kept
        report.removed += len(failed)
        report.kept -= len(failed)
    _write_json(work / "report.json", report.as_dict())
    return report


def _write_kept(src: Path, dst: Path, keep: np.ndarray, text_column: str, batch_size: int):
    if _kind(src) == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(src)
        pos = 0
        with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, pf.schema_arrow) as w:
            for batch in pf.iter_batches(batch_size=batch_size):
                mask = keep[pos : pos + batch.num_rows]
                pos += batch.num_rows
                w.write_table(pa.Table.from_batches([batch]).filter(pa.array(mask)))
        return
    # Copy the kept lines byte for byte: nothing is re-serialized. Rows are
    # the non-blank lines, as text_batches counts them.
    pos = 0
    with open_binary(src) as f, atomic_open(dst) as raw:
        g = gzip.GzipFile(dst.name, "wb", fileobj=raw, mtime=0) if dst.name.endswith(".gz") else raw
        for line in f:
            if not line.strip():
                continue
            if keep[pos]:
                g.write(line if line.endswith(b"\n") else line + b"\n")
            pos += 1
        if g is not raw:
            g.close()


def read_labels(work_dir: str | os.PathLike) -> np.ndarray:
    """The cluster ids a finished :func:`dedup_shards` run left in ``work_dir``."""
    return np.load(Path(work_dir) / "labels.npy")


__all__ = ["DedupReport", "dedup_shards", "read_labels"]
