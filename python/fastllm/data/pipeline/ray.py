"""``--engine ray``: the same stages as a Ray Data pipeline.

- the driver reads the units (file I/O, the same readers) into Arrow blocks;
- ``map_batches`` (pyarrow, one block per batch) runs the stage chain
  (extract, filters, PII) and the content hashes on the workers: each
  worker is an actor that builds its :class:`~fastllm.data.pipeline.common.StageChain`
  once, and nothing else. A stage's drop counts travel back as one extra
  *stats row* per batch (``id`` null, ``_stats`` JSON), split off on the
  driver, so the report has the same reasons as the local one;
- exact duplicates on the driver (16 bytes per document), near duplicates
  with :func:`fastllm.data.dedup.ray.near_duplicate_clusters` (LSH band keys
  shuffled by Ray's groupby), which gives the single-machine clusters;
- ``map_batches`` tokenizes (each actor loads the tokenizer once); the
  driver writes the shards in input order.

The one panic policy is the local engine's (see
:mod:`fastllm.data.pipeline.common`): a document a kernel fails on is
dropped in the stage where it happened (``signatures`` in the stage actors,
``dedup``, ``tokenize``: the tokenize actors send its report line back in
an ``error`` column) and counted there as ``internal_error`` with its id.

Order is preserved (``preserve_order``), so the documents equal the local
engine's. The phases both engines share (read stats, unit records, the
dedup keep mask, tokenizer training, the shard sets and the report) are
:mod:`fastllm.data.pipeline.common`'s.

What resumes, as in the local engine: a rerun of a finished output (same
settings) does nothing; otherwise every *unit* (a file, or a group of HTML
pages) whose extract/filter/hash results are in ``work/`` is skipped. A
unit's survivors (``work/NAME-ray.arrow``) and then its counts
(``work/NAME-ray.json``, the marker) are written atomically by the driver as
soon as the ordered stream has passed the unit's last block; NAME is the
local engine's (unit, files, settings), so changed inputs or settings redo
exactly their units. Only the units not yet finished are read and sent
through Ray. What does not resume: dedup (exact and the Ray-shuffled
MinHash, recomputed from the finished units' texts on every run), the
tokenizer training sample, and tokenization + shard writing, which restart
from empty shard sets (as in the local engine, the shard sets are the unit
of restart of that phase).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import PipelineConfig
from fastllm.data.filters import internal_errors
from fastllm.data.pipeline.common import (
    TOKENIZER,
    WORK,
    ShardSets,
    StageChain,
    dedup_keep,
    fingerprint,
    hash_documents,
    load_tokenizer,
    merged_stages,
    nbytes,
    open_output,
    read_record,
    read_stats,
    tokenizer_for,
    unit_name,
    unit_record,
    write_report,
)
from fastllm.data.report import StageStats, merge
from fastllm.io.atomic import atomic_open, write_json_atomic
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


def _stats_row(unit: int, stats: dict[str, StageStats], schema: pa.Schema) -> pa.Table:
    return pa.table(
        {
            "id": pa.nulls(1, pa.string()),
            "text": pa.nulls(1, pa.string()),
            "source": pa.nulls(1, pa.string()),
            "hash0": pa.array([0], pa.uint64()),
            "hash1": pa.array([0], pa.uint64()),
            "_stats": [json.dumps({k: asdict(v) for k, v in stats.items()})],
            "_unit": pa.array([unit], pa.int64()),
        },
        schema=schema,
    )


class StagesActor:
    """map_batches callable class: the stage chain and the content hashes of
    one block (the ``signatures`` stage, without MinHash: the near dedup
    makes its own signatures). Ray builds one per actor, so the chain is
    built once per worker (not per block)."""

    def __init__(self, cfg: PipelineConfig):
        self.chain = StageChain(cfg)
        self.dedup = cfg.dedup

    def __call__(self, block: pa.Table) -> pa.Table:
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
        if block.column("html").null_count < len(block):
            table = block.drop_columns(["text"])
        else:
            table = block.drop_columns(["html"])
        stats: dict[str, StageStats] = {}
        table = self.chain(table, stats)
        table, h, _ = hash_documents(
            table, self.dedup, stats.setdefault("signatures", StageStats()), signatures=False
        )
        n = len(table)
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
        return pa.concat_tables([kept, _stats_row(unit, stats, kept.schema)])


class TokenizeActor:
    """map_batches callable class: token ids of a batch's texts (the
    tokenizer loaded once per actor). A text the encoder failed on has no
    ids and its report line in ``error`` (null elsewhere)."""

    def __init__(self, path: str):
        from fastllm.tokenizer import Tokenizer

        self.tok = Tokenizer.from_file(path)

    def __call__(self, batch: pa.Table) -> pa.Table:
        failed: list[tuple[int, str]] = []
        ids, offsets = self.tok.encode_to_numpy(
            batch.column("text"), disallowed_special=(), failures=failed
        )
        tokens = pa.ListArray.from_arrays(
            pa.array(offsets.astype(np.int32)), pa.array(ids, pa.uint32())
        )
        error = pa.nulls(len(batch), pa.string())
        if failed:
            lines: list[str | None] = [None] * len(batch)
            for (k, _), line in zip(
                failed, internal_errors(batch, failed, "tokenizer"), strict=True
            ):
                lines[k] = line
            error = pa.array(lines, pa.string())
        return pa.table({"source": batch.column("source"), "tokens": tokens, "error": error})


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
    read = read_stats(
        counts,
        sum(len(t) for t in tables),
        sum(nbytes(t.column(1)) for t in tables),
        time.perf_counter() - t0,
    )
    record = {
        "unit": unit,
        "skipped": skipped,
        "errors": errors,
        "seconds": read.seconds,
        "stages": {"read": read},
    }
    return [_as_block(t, unit.index) for t in tables], record


def _finish_unit(work: Path, name: str, pending: dict, parts: list[pa.Table]) -> dict:
    """Persist one unit: survivors (atomically), then the marker."""
    t = pa.concat_tables(parts) if parts else _UNIT.empty_table()
    t = t.select(_UNIT.names).cast(_UNIT)
    if not pending["skipped"]:
        with atomic_open(work / f"{name}.arrow") as sink, pa.ipc.new_file(sink, _UNIT) as w:
            w.write_table(t)
    record = unit_record(
        pending["unit"],
        rows=len(t),
        skipped=pending["skipped"],
        errors=pending["errors"],
        seconds=pending["seconds"],
        stages=pending["stages"],
    )
    write_json_atomic(work / f"{name}.json", record)
    return record


def _stage_units(cfg: PipelineConfig, units: list[Unit], work: Path, names: dict[int, str]):
    """The stage chain and hashes of ``units`` on the Ray workers (one block
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
            done += 1

    if blocks:
        ds = ray.data.from_arrow(blocks).map_batches(
            StagesActor, fn_constructor_args=(cfg,), batch_format="pyarrow", batch_size=None
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


class RayEngine:
    """One run of the pipeline on Ray Data (``PipelineConfig.build()`` with
    ``run.engine = "ray"``). The driver loads the tokenizer (the shard writer
    needs it) and checks that the plug-in stages load, before Ray starts."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = Path(cfg.output.dir)
        self.tokenizer = load_tokenizer(cfg)
        cfg.filter.build()  # a plug-in stage that does not load: a ConfigError now
        self.fingerprint = fingerprint(cfg)

    def run(self) -> dict[str, Any]:
        import ray

        cfg, out = self.cfg, self.out
        t_start = time.perf_counter()
        report = open_output(cfg, self.fingerprint)
        if report is not None:
            return report
        if not ray.is_initialized():
            ray.init(
                num_cpus=cfg.run.num_cpus or None, include_dashboard=False, log_to_driver=False
            )
        ray.data.DataContext.get_current().execution_options.preserve_order = True

        units = list_units(cfg.input.paths, cfg.input.html_pages_per_unit)
        work = out / WORK
        work.mkdir(parents=True, exist_ok=True)
        names = {u.index: f"{unit_name(u, self.fingerprint)}-ray" for u in units}
        for p in work.iterdir():  # stale units (changed inputs/settings) and temporaries
            if p.is_file() and (p.name.startswith(".") or p.stem not in names.values()):
                p.unlink()
        records: dict[int, dict] = {}
        for u in units:
            marker = work / f"{names[u.index]}.json"
            if marker.is_file():
                records[u.index] = read_record(marker)
        resumed = len(records)
        todo = [u for u in units if u.index not in records]
        for rec in _stage_units(cfg, todo, work, names):
            records[rec["unit"]] = rec
        records_list = [records[u.index] for u in units]
        stages = merged_stages(records_list)
        parts = []
        for r in records_list:
            if not r["skipped"]:
                with pa.memory_map(str(work / f"{names[r['unit']]}.arrow")) as src:
                    parts.append(pa.ipc.open_file(src).read_all())
        table = pa.concat_tables(parts) if parts else _UNIT.empty_table()

        keep, stages["dedup"] = self.dedup(table)
        kept = table.filter(pa.array(keep)).select(["id", "text", "source"])
        tok = tokenizer_for(cfg, out, self.tokenizer, lambda: [kept.column("text")])
        tok_path = cfg.tokenizer.path or str(out / TOKENIZER)
        manifests, stages["tokenize"], stages["shards"] = self.write_shards(kept, tok, tok_path)
        return write_report(
            cfg,
            self.fingerprint,
            records_list,
            resumed,
            stages,
            manifests,
            time.perf_counter() - t_start,
        )

    def dedup(self, table: pa.Table) -> tuple[np.ndarray, StageStats]:
        """Exact duplicates on the driver, near duplicates with Ray's shuffle
        (exact verification on the driver, which holds the texts)."""
        import ray

        from fastllm.data.dedup.ray import near_duplicate_clusters

        d = self.cfg.dedup
        n = len(table)
        lengths = (
            pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
            if n
            else np.zeros(0)
        )
        h = (
            np.stack([table.column("hash0").to_numpy(), table.column("hash1").to_numpy()], axis=1)
            if n
            else np.zeros((0, 2), np.uint64)
        )

        def near_labels(idx: np.ndarray, failures: list) -> np.ndarray:
            sub = pa.table(
                {
                    "id": pa.array(np.arange(len(idx), dtype=np.uint64)),
                    "text": table.column("text").take(idx),
                }
            )
            return near_duplicate_clusters(
                ray.data.from_arrow(sub),
                d,
                texts=sub.column("text") if d.verify == "exact" else None,
                failures=failures,
            )

        return dedup_keep(h, lengths, d, near_labels, table.column("id"))

    def write_shards(self, kept: pa.Table, tok, tok_path: str):
        """Tokenize on the workers; write the shard sets in order on the driver."""
        import ray

        t0 = time.perf_counter()
        shards = ShardSets(self.cfg, self.out, tok)
        tstats = StageStats(
            docs_in=len(kept), docs_out=len(kept), bytes_in=nbytes(kept.column("text"))
        )
        if len(kept):
            tds = ray.data.from_arrow(kept).map_batches(
                TokenizeActor,
                fn_constructor_args=(tok_path,),
                batch_format="pyarrow",
                batch_size=self.cfg.input.batch_size,
            )
            for ref in tds.to_arrow_refs():
                t = ray.get(ref)
                err = t.column("error")
                if err.null_count < len(t):  # documents the encoder failed on
                    bad = pc.is_valid(err)
                    lines = err.filter(bad).to_pylist()
                    tstats.dropped["internal_error"] = tstats.dropped.get(
                        "internal_error", 0
                    ) + len(lines)
                    tstats.add(StageStats(errors=lines))
                    tstats.docs_out -= len(lines)
                    t = t.filter(pc.invert(bad))
                src = t.column("source").to_pylist()
                tokens = t.column("tokens").combine_chunks()
                # One add() per run of documents of the same source.
                start = 0
                for i in range(1, len(src) + 1):
                    if i == len(src) or src[i] != src[start]:
                        part = tokens.slice(start, i - start)
                        offsets = part.offsets.to_numpy().astype(np.int64)
                        flat = part.values.to_numpy()[offsets[0] : offsets[-1]]
                        shards.add(flat, offsets - offsets[0], source=src[start])
                        tstats.bytes_out += int(flat.nbytes)
                        start = i
        manifests = shards.close()
        tstats.seconds = time.perf_counter() - t0
        shards.stats.bytes_in = tstats.bytes_out
        return manifests, tstats, shards.stats
