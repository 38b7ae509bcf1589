"""What the local and the Ray engine do alike, written once.

An engine decides where the work runs (this process, Ray workers) and what
it keeps between runs; the phases themselves are here:

- :class:`StageChain`: extract, the filters and PII masking on one batch,
  counting documents, bytes, time and drops per stage (the local engine
  builds one; each Ray worker builds one, once);
- :func:`read_stats` and :func:`unit_record`: a unit's read counts and the
  record its marker in ``work/`` holds;
- :func:`hash_documents`: the ``signatures`` stage of a batch (content
  hashes, MinHash signatures);
- :func:`dedup_keep`: the run's keep mask, exact duplicates first (first
  kept), then near duplicates among the rest with the engine's clustering;
- :func:`drop_failed_tokens`: a tokenized batch without the documents the
  encoder failed on;
- :func:`tokenizer_for`: the given tokenizer, or one trained on the first
  kept training documents (``tokenizer.json``, written atomically);
- :class:`ShardSets`: the kept documents in order into ``shards/`` (and,
  with ``output.val_every``, every N-th into ``val_shards/``), committed
  when all are written;
- :func:`write_report`, :func:`open_output`, :func:`finished_report`,
  :func:`clean`: the report of a run, the check that makes a rerun of a
  finished output a no-op, and ``--force``.

Every phase applies the one panic policy of the Rust kernels
(``rust/src/guard.rs``): a document a kernel fails on (a panic, a bug) is
dropped where it happened and counted as ``internal_error`` in that stage,
its id in the stage's ``errors`` (``signatures``: content hashes and
MinHash signatures made per batch; ``dedup``: what the near-duplicate
clustering computes from the texts, i.e. the disk and Ray modes'
signatures and exact verification's shingle sets; ``tokenize``: the
encoder). It never reaches the shards, and the run goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import ConfigError, DedupConfig, PipelineConfig
from fastllm.data.dedup import content_hashes, first_occurrences, minhash
from fastllm.data.filters import internal_errors
from fastllm.data.report import StageStats, merge, stages_dict
from fastllm.data.stages import Extract, Stage
from fastllm.io.atomic import commit_dir, fresh_dir, write_json_atomic, write_text_atomic
from fastllm.io.readers import Unit

SHARDS = "shards"
VAL_SHARDS = "val_shards"
WORK = "work"
REPORT = "report.json"
TOKENIZER = "tokenizer.json"
MAX_ERRORS = 1000  # error messages kept in the report (the counts are complete)


def nbytes(col: Any) -> int:
    """UTF-8 bytes of a string (or binary) column."""
    if len(col) == 0:
        return 0
    return int(pc.sum(pc.binary_length(col)).as_py() or 0)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def progress(enabled: bool, **kw):
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled, file=sys.stderr, **kw)


def fingerprint(cfg: PipelineConfig) -> str:
    """What a unit's results and a finished output depend on: the input,
    filter, PII and dedup settings and whether HTML is extracted."""
    return cfg.fingerprint("input", "filter", "pii", "dedup") + ("x" if cfg.run.extract else "r")


def unit_name(unit: Unit, fp: str) -> str:
    """A unit's name in ``work/``: its index, its files' key and ``fp``."""
    return f"{unit.index:05d}-{unit.key()}-{fp}"


def load_tokenizer(cfg: PipelineConfig):
    """The tokenizer ``tokenizer.path`` names, or None (one is trained in the run)."""
    if not cfg.tokenizer.path:
        return None
    from fastllm.tokenizer import Tokenizer

    try:
        return Tokenizer.from_file(cfg.tokenizer.path)
    except (OSError, ValueError) as e:
        raise ConfigError("tokenizer.path", f"{cfg.tokenizer.path}: {e}") from None


# ---- per batch ------------------------------------------------------------------
class StageChain:
    """extract, the filters and PII masking of ``cfg``, in run order, on one
    batch at a time. Building it loads the plug-in stages, so a bad one is a
    ConfigError before any work."""

    def __init__(self, cfg: PipelineConfig):
        self.stages: list[Stage] = [
            Extract(cfg.run.extract),
            *cfg.filter.build(),
            *cfg.pii.build(),
        ]

    def __call__(self, table: pa.Table, stats: dict[str, StageStats]) -> pa.Table:
        """The kept rows of ``table``; each stage's counts are added to ``stats``."""
        for stage in self.stages:
            t0 = time.perf_counter()
            col = "html" if "html" in table.column_names else "text"
            s = stats.setdefault(stage.name, StageStats())
            s.docs_in += len(table)
            s.bytes_in += nbytes(table.column(col))
            table, dropped, *errors = stage(table)
            s.docs_out += len(table)
            s.bytes_out += nbytes(table.column("text"))
            for k, v in dropped.items():
                s.dropped[k] = s.dropped.get(k, 0) + int(v)
            if errors:  # the documents dropped as internal_error, by id
                s.add(StageStats(errors=list(errors[0])))
            s.seconds += time.perf_counter() - t0
        return table


# ---- per unit -------------------------------------------------------------------
def read_stats(counts: Counter, docs_out: int, bytes_out: int, seconds: float) -> StageStats:
    """The ``read`` stage of a unit from the reader's counts (``docs``,
    ``bytes``, ``drop:<reason>``, ``flag:<what>``) and what it passed on."""
    return StageStats(
        docs_in=counts["docs"],
        docs_out=docs_out,
        bytes_in=counts["bytes"],
        bytes_out=bytes_out,
        dropped={k[5:]: v for k, v in counts.items() if k.startswith("drop:") and v},
        flagged={k[5:]: v for k, v in counts.items() if k.startswith("flag:")},
        seconds=seconds,
    )


def unit_record(
    unit: Unit,
    *,
    rows: int,
    skipped: str | None,
    errors: list[str],
    seconds: float,
    stages: dict[str, StageStats],
) -> dict[str, Any]:
    """What a finished unit's marker (``work/NAME.json``) holds."""
    return {
        "unit": unit.index,
        "files": [str(f) for f in unit.files],
        "source": unit.source,
        "input_bytes": unit.nbytes(),
        "rows": rows,
        "skipped": skipped,
        "errors": errors[:MAX_ERRORS],
        "seconds": seconds,
        "stages": stages_dict(stages),
    }


def read_record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# ---- the signatures stage (per batch) -------------------------------------------
def count_failed(failed: dict[int, tuple[str, str]], table: pa.Table, s: StageStats) -> np.ndarray:
    """Count the rows of ``table`` in ``failed`` (row -> (kernel, panic
    message)) in ``s`` as ``internal_error``, each named by its id in
    ``s.errors``; returns the mask of the other rows (what is kept)."""
    by_kernel: dict[str, list[tuple[int, str]]] = {}
    for k in sorted(failed):
        where, message = failed[k]
        by_kernel.setdefault(where, []).append((k, message))
    s.dropped["internal_error"] = s.dropped.get("internal_error", 0) + len(failed)
    s.add(
        StageStats(errors=[e for w, f in by_kernel.items() for e in internal_errors(table, f, w)])
    )
    keep = np.ones(len(table), dtype=bool)
    keep[list(failed)] = False
    return keep


def hash_documents(
    table: pa.Table, d: DedupConfig, s: StageStats, *, signatures: bool = True
) -> tuple[pa.Table, np.ndarray, np.ndarray | None]:
    """The ``signatures`` stage of one batch, its counts added to ``s``: the
    content hashes of ``table``'s documents and, with ``signatures`` and
    ``d.near``, their MinHash signatures (else None). Returns the kept rows
    with their hashes and signatures: a document either kernel failed on
    is dropped (``internal_error``)."""
    t0 = time.perf_counter()
    n = len(table)
    texts = table.column("text")  # read in place by Rust, no to_pylist
    size = nbytes(texts)
    s.docs_in += n
    s.bytes_in += size
    failed_h: list[tuple[int, str]] = []
    failed_m: list[tuple[int, str]] = []
    hashes = content_hashes(texts, failures=failed_h) if n else np.zeros((0, 2), np.uint64)
    sigs = None
    if n and d.near and signatures:
        sigs = minhash(texts, d.num_perm, d.ngram, d.seed, failures=failed_m)
    if failed_h or failed_m:
        failed = {k: ("minhash", m) for k, m in failed_m}
        failed.update({k: ("content_hashes", m) for k, m in failed_h})
        keep = count_failed(failed, table, s)
        table, hashes = table.filter(pa.array(keep)), hashes[keep]
        sigs = None if sigs is None else sigs[keep]
        size = nbytes(table.column("text"))
    s.docs_out += len(table)
    s.bytes_out += size
    s.seconds += time.perf_counter() - t0
    return table, hashes, sigs


# ---- dedup over the run -------------------------------------------------------
def dedup_keep(
    hashes: np.ndarray,
    lengths: np.ndarray,
    d: DedupConfig,
    near_labels: Callable[[np.ndarray, list], np.ndarray],
    ids: Any,
) -> tuple[np.ndarray, StageStats]:
    """The keep mask over every document of the run (in input order) and the
    ``dedup`` stage's counts: exact duplicates (``hashes``, first kept), then
    near duplicates among the rest. ``near_labels(idx, failures)`` gives the
    cluster labels of the documents ``idx`` (positions among them, as
    :func:`fastllm.data.dedup.near_duplicate_clusters` numbers them): the
    engine's clustering (in memory, out of core, Ray), which appends
    ``(position, message)`` of the documents a kernel failed on to
    ``failures`` (their own clusters); those are dropped as
    ``internal_error``, named by their ``ids`` (the run's document ids, an
    Arrow column in input order)."""
    t0 = time.perf_counter()
    n = len(hashes)
    keep = np.ones(n, dtype=bool)
    stats = StageStats(docs_in=n, bytes_in=int(lengths.sum()))
    if d.enabled and d.exact and n:
        keep = first_occurrences(hashes)
        if (dups := int(n - keep.sum())) > 0:
            stats.dropped["exact_duplicate"] = dups
    if d.enabled and d.near and keep.any():
        idx = np.flatnonzero(keep)
        failed: list[tuple[int, str]] = []
        near = near_labels(idx, failed) != np.arange(len(idx))
        keep[idx[near]] = False
        if near.any():
            stats.dropped["near_duplicate"] = int(near.sum())
        if failed:
            rows = idx[np.array([k for k, _ in failed], dtype=np.int64)]
            keep[rows] = False
            named = pa.table({"id": ids.take(pa.array(rows))})
            count_failed({k: ("near dedup", m) for k, (_, m) in enumerate(failed)}, named, stats)
    stats.docs_out = int(keep.sum())
    stats.bytes_out = int(lengths[keep].sum())
    stats.seconds = time.perf_counter() - t0
    return keep, stats


# ---- tokenize ---------------------------------------------------------------------
def drop_failed_tokens(
    batch: pa.Table, ids: np.ndarray, offsets: np.ndarray, failed: list, s: StageStats
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, offsets)`` of the documents of ``batch`` (tokenized by
    ``encode_to_numpy(..., failures=failed)``) without those the encoder
    failed on, which have no ids; those are counted in ``s`` as
    ``internal_error``, named by id."""
    if not failed:
        return ids, offsets
    keep = count_failed({k: ("tokenizer", m) for k, m in failed}, batch, s)
    lengths = np.diff(offsets)[keep]
    return ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


# ---- the validation split ------------------------------------------------------------
def val_mask(start: int, n: int, val_every: int) -> np.ndarray:
    """Which of the kept documents ``start .. start + n - 1`` (positions in
    input order among all kept documents) are validation documents: every
    ``val_every``-th (the last of each group of ``val_every``); none when 0."""
    if not val_every:
        return np.zeros(n, dtype=bool)
    return (np.arange(start, start + n) % val_every) == val_every - 1


# ---- tokenizer ------------------------------------------------------------------------
def tokenizer_for(cfg: PipelineConfig, out: Path, given, kept_texts: Callable[[], Iterable]):
    """``given`` (from ``tokenizer.path``), the one a previous attempt
    trained (``out/tokenizer.json``), or a new one trained on the first
    ``tokenizer.train_sample_docs`` kept training documents (validation
    documents left out): ``kept_texts()`` yields the kept documents in input
    order as Arrow string columns."""
    if given is not None:
        return given
    from fastllm.tokenizer import Tokenizer

    path = out / TOKENIZER
    if path.is_file():
        return Tokenizer.from_file(path)
    want, every = cfg.tokenizer.train_sample_docs, cfg.output.val_every
    sample: list[str] = []
    start = 0
    for col in kept_texts():
        n = len(col)
        val = val_mask(start, n, every)
        start += n
        if val.any():
            col = col.filter(pa.array(~val))
        sample += col.slice(0, want - len(sample)).to_pylist()
        if len(sample) >= want:
            break
    tok = Tokenizer.train(sample, cfg.tokenizer.train_vocab_size, show_progress=cfg.run.progress)
    write_text_atomic(path, tok.to_json())
    return Tokenizer.from_file(path)


# ---- shards -----------------------------------------------------------------------------
class ShardSets:
    """The kept documents, in input order, into ``shards/`` and (with
    ``output.val_every``) every N-th of them into ``val_shards/``.

    Both are written in temporary directories (``.shards.tmp/``,
    ``.val_shards.tmp/``, emptied first: the shard sets are the unit of
    restart of this phase) and committed by :meth:`close`, the validation
    set first, so a finished ``shards/`` (manifest and all) means a finished
    ``val_shards/``. ``shards`` counts the time and documents of the writes."""

    def __init__(self, cfg: PipelineConfig, out: Path, tok):
        from fastllm.shards import ShardWriter

        self.out, self.val_every = out, cfg.output.val_every
        (out / REPORT).unlink(missing_ok=True)  # it is being redone
        names = [SHARDS, VAL_SHARDS] if self.val_every else [SHARDS]
        self.tmp = {name: fresh_dir(out / f".{name}.tmp") for name in names}
        self.writers = {
            name: ShardWriter(
                d,
                tokenizer=tok,
                max_shard_bytes=cfg.output.max_shard_bytes,
                prefix=cfg.output.prefix,
            )
            for name, d in self.tmp.items()
        }
        self.added = 0  # documents so far (the validation split's positions)
        self.stats = StageStats()

    def add(self, ids: np.ndarray, offsets: np.ndarray, source: str) -> None:
        """Documents ``ids[offsets[i]:offsets[i + 1]]``, next in input order."""
        t0 = time.perf_counter()
        n = len(offsets) - 1
        val = val_mask(self.added, n, self.val_every)
        if val.any():
            lengths = np.diff(offsets)
            per_token = np.repeat(val, lengths)
            for name, docs, toks in (
                (SHARDS, ~val, ~per_token),
                (VAL_SHARDS, val, per_token),
            ):
                if docs.any():
                    sub = np.concatenate([[0], np.cumsum(lengths[docs])]).astype(np.int64)
                    self.writers[name].add(ids[toks], sub, source=source)
        else:
            self.writers[SHARDS].add(ids, offsets, source=source)
        self.added += n
        self.stats.docs_in += n
        self.stats.seconds += time.perf_counter() - t0

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish and commit every shard set; returns their manifests by name."""
        t0 = time.perf_counter()
        manifests = {name: w.close() for name, w in self.writers.items()}
        for name in sorted(self.tmp, key=lambda n: n == SHARDS):  # val_shards/ first
            commit_dir(self.tmp[name], self.out / name)
        if not self.val_every and (self.out / VAL_SHARDS).exists():
            shutil.rmtree(self.out / VAL_SHARDS)  # a previous run's split
        self.stats.seconds += time.perf_counter() - t0
        self.stats.docs_out = sum(m["documents"] for m in manifests.values())
        self.stats.bytes_out = sum(
            f["bytes"] for m in manifests.values() for s in m["shards"] for f in s["files"].values()
        )
        return manifests


# ---- the report ------------------------------------------------------------------------
def write_report(
    cfg: PipelineConfig,
    fp: str,
    records: list[dict[str, Any]],
    resumed: int,
    stages: dict[str, StageStats],
    manifests: dict[str, dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """The run's report (written to ``report.json`` last: with the shard
    manifest it marks the output finished)."""
    manifest = manifests[SHARDS]
    input_bytes = sum(r["input_bytes"] for r in records)
    n_cores = cores()
    mbps = input_bytes / 1e6 / seconds if seconds > 0 else 0.0
    totals = {
        "documents": manifest["documents"],
        "tokens": manifest["tokens"],
        "shards": len(manifest["shards"]),
        "oversized_documents": manifest.get("oversized_documents", 0),
        "sources": manifest["sources"],
        "input_bytes": input_bytes,
        "seconds": seconds,
        "cores": n_cores,
        "mb_per_s": mbps,
        "mb_per_s_per_core": mbps / n_cores,
    }
    if VAL_SHARDS in manifests:
        totals["val_documents"] = manifests[VAL_SHARDS]["documents"]
        totals["val_tokens"] = manifests[VAL_SHARDS]["tokens"]
    report = {
        "fingerprint": fp,
        "engine": cfg.run.engine,
        "units": len(records),
        "resumed_units": resumed,
        "skipped_units": [r["skipped"] for r in records if r["skipped"]],
        "errors": [e for r in records for e in r["errors"]][:MAX_ERRORS],
        "stages": stages_dict(stages),
        "totals": totals,
        "config": cfg.to_dict(),
    }
    write_json_atomic(Path(cfg.output.dir) / REPORT, report)
    return report


def merged_stages(records: list[dict[str, Any]]) -> dict[str, StageStats]:
    """The per-unit stages of ``records`` added up, in first-seen order."""
    stages: dict[str, StageStats] = {}
    for r in records:
        merge(stages, r["stages"])
    return stages


def finished_report(cfg: PipelineConfig, fp: str) -> dict[str, Any] | None:
    """The report of a run already finished in ``output.dir`` (marked
    ``finished_before``), None when there is none; a ConfigError when it was
    finished with other settings (both engines check this before any work)."""
    out = Path(cfg.output.dir)
    if not ((out / SHARDS / "manifest.json").is_file() and (out / REPORT).is_file()):
        return None
    report = read_record(out / REPORT)
    split = report.get("config", {}).get("output", {}).get("val_every", 0)
    if report.get("fingerprint") != fp or split != cfg.output.val_every:
        raise ConfigError(
            "output.dir",
            f"{out}: finished with other settings (input/filter/pii/dedup/run.extract/"
            "output.val_every); use --force to redo it, or another --output",
        )
    report["finished_before"] = True
    return report


def open_output(cfg: PipelineConfig, fp: str) -> dict[str, Any] | None:
    """The start of a run in ``output.dir``, for both engines: the folder made,
    emptied first with ``run.force``; the report of a run finished there
    before (:func:`finished_report`), or None when there is work to do."""
    out = Path(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.run.force:
        clean(out)
    return finished_report(cfg, fp)


def clean(out: Path) -> None:
    """Remove what the pipeline writes in ``out`` (and nothing else)."""
    for name in (SHARDS, VAL_SHARDS, WORK, f".{SHARDS}.tmp", f".{VAL_SHARDS}.tmp"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in (REPORT, TOKENIZER):
        (out / name).unlink(missing_ok=True)
