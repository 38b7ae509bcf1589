"""``--engine ray``: the same stages as a Ray Data pipeline.

- the driver reads the units (file I/O, the same readers) into Arrow blocks;
- ``map_batches`` (pyarrow, one block per batch) runs extract, the filters
  and the content hashes on the workers. A stage's drop counts travel back
  as one extra *stats row* per batch (``id`` null, ``_stats`` JSON), split
  off on the driver, so the report has the same reasons as the local one;
- exact duplicates on the driver (16 bytes per document), near duplicates
  with :func:`fastllm.data.dedup.ray.near_duplicate_clusters` (LSH band keys
  shuffled by Ray's groupby), which gives the single-machine clusters;
- ``map_batches`` tokenizes; the driver writes the shards in input order.

Order is preserved (``preserve_order``), so the documents equal the local
engine's.

What resumes, as in the local engine: a rerun of a finished output (same
settings) does nothing; otherwise every *unit* (a file, or a group of HTML
pages) whose extract/filter/hash results are in ``work/`` is skipped. A
unit's survivors (``work/NAME-ray.arrow``) and then its counts
(``work/NAME-ray.json``, the marker) are written by the driver, each under a
temporary name then renamed, as soon as the ordered stream has passed the
unit's last block; NAME is the local engine's (unit, files, settings), so
changed inputs or settings redo exactly their units. Only the units not yet
finished are read and sent through Ray. What does not resume: dedup (exact
and the Ray-shuffled MinHash, recomputed from the finished units' texts on
every run), the tokenizer training sample, and tokenization + shard writing,
which restart from the beginning of ``.shards.tmp/`` (as in the local
engine, the shard set is the unit of restart of that phase).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import PipelineConfig
from fastllm.data.pipeline.local import (
    MAX_ERRORS,
    SHARDS,
    TOKENIZER,
    WORK,
    Runner,
    _bytes,
    _kill_hook,
    clean,
    finished_report,
)
from fastllm.data.report import StageStats, merge, stages_dict, write_json_atomic
from fastllm.io.readers import Unit, UnitError, list_units, read_unit

_BLOCK = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("html", pa.binary()),
        ("source", pa.string()),
        ("url", pa.string()),  # WARC pages: helps charset detection (null elsewhere)
        ("_unit", pa.int64()),
    ]
)
# What a finished unit keeps in work/: its survivors and their content hashes.
_UNIT = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()),
     ("hash0", pa.uint64()), ("hash1", pa.uint64())]
)  # fmt: skip


def _as_block(t: pa.Table, unit: int) -> pa.Table:
    """One schema for every block (text or html, the other null), tagged with its unit."""
    n = len(t)
    cols = {}
    for f in _BLOCK:
        cols[f.name] = t.column(f.name) if f.name in t.column_names else pa.nulls(n, f.type)
    cols["_unit"] = pa.array(np.full(n, unit, np.int64))
    return pa.table(cols, schema=_BLOCK)


class _Stages:
    """map_batches callable: extract + filters + content hashes of one block."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.runner: Runner | None = None

    def __call__(self, block: pa.Table) -> pa.Table:
        from fastllm.data.dedup import content_hashes

        if self.runner is None:
            self.runner = Runner(self.cfg)
        if len(block) == 0:  # _read makes none; Ray might
            return pa.table(
                {
                    **{f.name: pa.array([], f.type) for f in _UNIT},
                    "_stats": pa.array([], pa.string()),
                    "_unit": pa.array([], pa.int64()),
                }
            )
        unit = block.column("_unit")[0].as_py()  # one unit per block (see _read)
        block = block.drop_columns(["_unit"])
        if len(block) and block.column("html").null_count < len(block):
            table = block.drop_columns(["text"])
        else:
            table = block.drop_columns(["html"])
        stats: dict[str, StageStats] = {}
        table = self.runner.stage_batch(table, stats)
        n = len(table)
        h = content_hashes(table.column("text")) if n else np.zeros((0, 2), np.uint64)
        kept = pa.table(
            {
                "id": table.column("id"),
                "text": table.column("text"),
                "source": table.column("source"),
                "hash0": pa.array(np.ascontiguousarray(h[:, 0]), pa.uint64()),
                "hash1": pa.array(np.ascontiguousarray(h[:, 1]), pa.uint64()),
                "_stats": pa.nulls(n, pa.string()),
                "_unit": pa.array(np.full(n, unit, np.int64)),
            }
        )
        from dataclasses import asdict

        row = pa.table(
            {
                "id": pa.nulls(1, pa.string()),
                "text": pa.nulls(1, pa.string()),
                "source": pa.nulls(1, pa.string()),
                "hash0": pa.array([0], pa.uint64()),
                "hash1": pa.array([0], pa.uint64()),
                "_stats": [json.dumps({k: asdict(v) for k, v in stats.items()})],
                "_unit": pa.array([unit], pa.int64()),
            },
            schema=kept.schema,
        )
        return pa.concat_tables([kept, row])


class _Tokenize:
    def __init__(self, path: str):
        self.path = path
        self.tok = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        from fastllm.tokenizer import Tokenizer

        if self.tok is None:
            self.tok = Tokenizer.from_file(self.path)
        ids, offsets = self.tok.encode_to_numpy(batch.column("text"), disallowed_special=())
        tokens = pa.ListArray.from_arrays(
            pa.array(offsets.astype(np.int32)), pa.array(ids, pa.uint32())
        )
        return pa.table({"source": batch.column("source"), "tokens": tokens})


def _read(cfg: PipelineConfig, unit: Unit) -> tuple[list[pa.Table], dict]:
    """A unit's blocks, read on the driver, and its record so far (read stats)."""
    counts: Counter = Counter()
    errors: list[str] = []
    t0 = time.perf_counter()
    try:
        tables = list(read_unit(unit, cfg.input.batch_size, cfg.input.text_field, counts, errors))
        skipped = None
    except UnitError as e:
        tables, skipped, counts = [], str(e), Counter(bytes=counts["bytes"])
    tables = [t for t in tables if len(t)]
    read = StageStats(
        docs_in=counts["docs"],
        docs_out=sum(len(t) for t in tables),
        bytes_in=counts["bytes"],
        bytes_out=sum(_bytes(t.column(1)) for t in tables),
        dropped={k[5:]: v for k, v in counts.items() if k.startswith("drop:") and v},
        flagged={k[5:]: v for k, v in counts.items() if k.startswith("flag:")},
        seconds=time.perf_counter() - t0,
    )
    record = {
        "unit": unit.index,
        "files": [str(f) for f in unit.files],
        "source": unit.source,
        "input_bytes": unit.nbytes(),
        "rows": 0,
        "skipped": skipped,
        "errors": errors[:MAX_ERRORS],
        "seconds": read.seconds,
        "stages": {"read": read},
    }
    return [_as_block(t, unit.index) for t in tables], record


def _finish_unit(work: Path, name: str, record: dict, parts: list[pa.Table]) -> dict:
    """Persist one unit: survivors (renamed into place), then the marker."""
    t = pa.concat_tables(parts) if parts else _UNIT.empty_table()
    t = t.select(_UNIT.names).cast(_UNIT)
    if not record["skipped"]:
        arrow, tmp = work / f"{name}.arrow", work / f".{name}.arrow.tmp"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _UNIT) as w:
            w.write_table(t)
        os.replace(tmp, arrow)
    record["rows"] = len(t)
    record["stages"] = stages_dict(record["stages"])
    write_json_atomic(work / f"{name}.json", record)
    return record


def _stage_units(cfg: PipelineConfig, units: list[Unit], work: Path, names: dict[int, str]):
    """Extract + filters + hashes of ``units`` on the Ray workers (one block
    per batch); yields each unit's record once it is persisted, in order."""
    import ray

    blocks, pending = [], {}
    for unit in units:
        b, record = _read(cfg, unit)
        blocks += b
        pending[unit.index] = (record, [])
    order = [u.index for u in units]
    pos = {idx: k for k, idx in enumerate(order)}
    done = 0

    def flush(upto: int):  # every unit before position ``upto`` in ``order`` is complete
        nonlocal done
        while done < upto:
            idx = order[done]
            record, parts = pending.pop(idx)
            yield _finish_unit(work, names[idx], record, parts)
            _kill_hook("unit", done + 1)
            done += 1

    if blocks:
        ds = ray.data.from_arrow(blocks).map_batches(
            _Stages(cfg), batch_format="pyarrow", batch_size=None
        )
        # Ordered stream: once a block of a later unit arrives, the earlier ones are whole.
        for out in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for idx in pc.unique(out.column("_unit")).to_pylist():
                part = out.filter(pc.equal(out.column("_unit"), idx))
                is_stats = pc.is_null(part.column("id"))
                record, parts = pending[idx]
                for s in part.filter(is_stats).column("_stats").to_pylist():
                    merge(record["stages"], json.loads(s))
                parts.append(part.filter(pc.invert(is_stats)))
                yield from flush(pos[idx])
    yield from flush(len(order))


def run_ray(cfg: PipelineConfig) -> dict[str, Any]:
    import ray

    from fastllm.data.dedup.ray import near_duplicate_clusters
    from fastllm.shards import ShardWriter

    t_start = time.perf_counter()
    runner = Runner(cfg)  # config errors (tokenizer, hooks) before any work
    out = Path(cfg.output.dir)
    if cfg.run.force:
        clean(out)
    report = finished_report(out, runner.fingerprint)
    if report is not None:
        return report
    out.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        ray.init(num_cpus=cfg.run.num_cpus or None, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True

    units = list_units(cfg.input.paths, cfg.input.html_pages_per_unit)
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    names = {u.index: f"{runner.unit_name(u)}-ray" for u in units}
    for p in work.iterdir():  # stale units (changed inputs/settings) and temporaries
        if p.is_file() and (p.name.startswith(".") or p.stem not in names.values()):
            p.unlink()
    records: dict[int, dict] = {}
    for u in units:
        marker = work / f"{names[u.index]}.json"
        if marker.is_file():
            records[u.index] = json.loads(marker.read_text(encoding="utf-8"))
    resumed = len(records)
    todo = [u for u in units if u.index not in records]
    for rec in _stage_units(cfg, todo, work, names):
        records[rec["unit"]] = rec
    records_list = [records[u.index] for u in units]
    stages: dict[str, StageStats] = {}
    parts = []
    for r in records_list:
        merge(stages, r["stages"])
        if not r["skipped"]:
            with pa.memory_map(str(work / f"{names[r['unit']]}.arrow")) as src:
                parts.append(pa.ipc.open_file(src).read_all())
    table = pa.concat_tables(parts) if parts else _UNIT.empty_table()

    # Dedup: exact on the driver, near with Ray's shuffle.
    d = cfg.dedup
    t0 = time.perf_counter()
    n = len(table)
    lengths = (
        pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False) if n else np.zeros(0)
    )
    dstats = StageStats(docs_in=n, bytes_in=int(lengths.sum()))
    keep = np.ones(n, bool)
    if d.enabled and d.exact and n:
        h = np.stack([table.column("hash0").to_numpy(), table.column("hash1").to_numpy()], axis=1)
        keys = np.ascontiguousarray(h).view(np.dtype((np.void, 16))).ravel()
        _, first = np.unique(keys, return_index=True)
        keep[:] = False
        keep[first] = True
        if n - len(first):
            dstats.dropped["exact_duplicate"] = n - len(first)
    if d.enabled and d.near and keep.any():
        idx = np.flatnonzero(keep)
        sub = pa.table(
            {
                "id": pa.array(np.arange(len(idx), dtype=np.uint64)),
                "text": table.column("text").take(idx),
            }
        )
        # Exact verification on the driver, which holds the texts (dedup_ray).
        labels = near_duplicate_clusters(
            ray.data.from_arrow(sub),
            d.threshold,
            d.num_perm,
            d.ngram,
            d.seed,
            verify=False if d.verify == "none" else d.verify,
            texts=sub.column("text") if d.verify == "exact" else None,
        )
        near = labels != np.arange(len(idx))
        keep[idx[near]] = False
        if near.any():
            dstats.dropped["near_duplicate"] = int(near.sum())
    dstats.docs_out, dstats.bytes_out = int(keep.sum()), int(lengths[keep].sum())
    dstats.seconds = time.perf_counter() - t0
    stages["dedup"] = dstats
    kept = table.filter(pa.array(keep)).select(["text", "source"])

    # Tokenizer: given, or trained on the driver from the first kept documents.
    tok_path = cfg.tokenizer.path
    if not tok_path:
        from fastllm.tokenizer import Tokenizer

        tok_path = str(out / TOKENIZER)
        if not Path(tok_path).is_file():
            sample = kept.column("text").slice(0, cfg.tokenizer.train_sample_docs).to_pylist()
            tok = Tokenizer.train(
                sample, cfg.tokenizer.train_vocab_size, show_progress=cfg.run.progress
            )
            tmp = out / f".{TOKENIZER}.tmp"
            tmp.write_text(tok.to_json(), encoding="utf-8")
            os.replace(tmp, tok_path)
    from fastllm.tokenizer import Tokenizer

    tok = runner.tokenizer or Tokenizer.from_file(tok_path)

    # Tokenize on the workers; write the shards in order on the driver.
    t0 = time.perf_counter()
    tmp = out / ".shards.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    writer = ShardWriter(
        tmp, tokenizer=tok, max_shard_bytes=cfg.output.max_shard_bytes, prefix=cfg.output.prefix
    )
    tstats = StageStats(docs_in=len(kept), docs_out=len(kept), bytes_in=_bytes(kept.column("text")))
    if len(kept):
        tds = ray.data.from_arrow(kept).map_batches(
            _Tokenize(tok_path), batch_format="pyarrow", batch_size=cfg.input.batch_size
        )
        for ref in tds.to_arrow_refs():
            t = ray.get(ref)
            src = t.column("source").to_pylist()
            tokens = t.column("tokens").combine_chunks()
            # One add() per run of documents of the same source.
            start = 0
            for i in range(1, len(src) + 1):
                if i == len(src) or src[i] != src[start]:
                    part = tokens.slice(start, i - start)
                    offsets = part.offsets.to_numpy().astype(np.int64)
                    flat = part.values.to_numpy()[offsets[0] : offsets[-1]]
                    writer.add(flat, offsets - offsets[0], source=src[start])
                    tstats.bytes_out += int(flat.nbytes)
                    start = i
    manifest = writer.close()
    tstats.seconds = time.perf_counter() - t0
    stages["tokenize"] = tstats
    stages["shards"] = StageStats(
        docs_in=len(kept),
        docs_out=manifest["documents"],
        bytes_in=tstats.bytes_out,
        bytes_out=sum(f["bytes"] for s in manifest["shards"] for f in s["files"].values()),
    )
    final = out / SHARDS
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return runner.finish(records_list, resumed, stages, manifest, time.perf_counter() - t_start)
