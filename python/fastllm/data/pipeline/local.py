"""The local engine: inputs → extract → filters → dedup → tokenize → shards
in this process, restartable.

It works in three phases inside ``output.dir`` (the phases both engines
share are in :mod:`fastllm.data.pipeline.common`):

1. per unit (a file, or a group of HTML pages; see :mod:`fastllm.io.readers`):
   read → the stage chain (extract, filters, PII), Arrow batch by batch, then
   the content hash and MinHash signature of each surviving document. The
   unit's survivors go to ``work/NAME.arrow`` and its counts to
   ``work/NAME.json``, each written atomically (:mod:`fastllm.io.atomic`);
   the ``.json`` comes last and marks the unit finished. NAME holds the
   unit's index, its files' (path, size, mtime) and the settings phase 1
   depends on, so a rerun skips exactly the finished units whose inputs and
   settings are unchanged and redoes the rest.
2. dedup over the whole run: exact duplicates (first kept, in input order),
   then MinHash/LSH clusters (first of each cluster kept). With
   ``dedup.mode = "memory"`` (the default) the clusters come from every
   signature at once, read from ``work/``; cheap and deterministic, so
   recomputed on every run rather than persisted. With ``dedup.mode =
   "disk"`` they come from :func:`fastllm.data.dedup.disk.dedup_shards`, which
   holds one unit's signatures at a time: each unit's exact-dedup survivors
   go to ``work/dedup-KEY/in/NNNNN.parquet`` and its state to
   ``work/dedup-KEY/ooc/`` (KEY: the units and dedup settings), so a rerun
   resumes it where it stopped. Both modes keep the same documents.
3. tokenize the kept documents in input order and write them with
   :class:`~fastllm.data.pipeline.common.ShardSets` (``shards/``, and
   ``val_shards/`` with ``output.val_every``), committed when complete. A
   run killed here redoes phase 3 from the finished units: the shard sets
   are the unit of restart of this phase, and the result is byte-identical
   to an uninterrupted run.

``tokenizer.json`` (when trained in the run) and ``report.json`` are written
atomically too. A rerun of a finished output prints its report and does
nothing; ``--force`` (``run.force``) deletes what the pipeline wrote and redoes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import DedupConfig, PipelineConfig
from fastllm.data.pipeline.common import (
    WORK,
    ShardSets,
    StageChain,
    dedup_keep,
    drop_failed_tokens,
    fingerprint,
    hash_documents,
    load_tokenizer,
    merged_stages,
    nbytes,
    open_output,
    progress,
    read_record,
    read_stats,
    tokenizer_for,
    unit_name,
    unit_record,
    write_report,
)
from fastllm.data.report import StageStats
from fastllm.io.atomic import atomic_open, atomic_path, write_json_atomic
from fastllm.io.readers import Unit, UnitError, list_units, read_unit


def _schema(num_perm: int) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("source", pa.string()),
            ("hash0", pa.uint64()),
            ("hash1", pa.uint64()),
            ("minhash", pa.list_(pa.uint64(), num_perm)),
        ]
    )


def signatures(table: pa.Table, d: DedupConfig, stats: dict[str, StageStats]) -> pa.Table:
    """``table``'s survivors with their content hashes and MinHash signatures
    (zeros when near dedup is off): what a unit keeps in ``work/``. The
    ``signatures`` stage (:func:`~fastllm.data.pipeline.common.hash_documents`)
    is counted in ``stats``."""
    table, hashes, sigs = hash_documents(table, d, stats.setdefault("signatures", StageStats()))
    n = len(table)
    if sigs is None:
        sigs = np.zeros((n, d.num_perm), np.uint64)
    flat = pa.array(np.ascontiguousarray(sigs).reshape(-1), pa.uint64())
    return pa.table(
        {
            "id": table.column("id"),
            "text": table.column("text"),
            "source": table.column("source"),
            "hash0": pa.array(np.ascontiguousarray(hashes[:, 0]), pa.uint64()),
            "hash1": pa.array(np.ascontiguousarray(hashes[:, 1]), pa.uint64()),
            "minhash": pa.FixedSizeListArray.from_arrays(flat, d.num_perm),
        }
    )


class LocalEngine:
    """One run of the pipeline for a checked config, in this process
    (``PipelineConfig.build()`` with ``run.engine = "local"``)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = Path(cfg.output.dir)
        # The plug-in stages and the tokenizer load here: config errors first.
        self.chain = StageChain(cfg)
        self.tokenizer = load_tokenizer(cfg)
        self.fingerprint = fingerprint(cfg)
        self._names: dict[int, str] = {}

    # ---- phase 1 --------------------------------------------------------
    def unit_name(self, unit: Unit) -> str:
        return unit_name(unit, self.fingerprint)

    def process_unit(self, unit: Unit, work: Path) -> dict[str, Any]:
        """Phase 1 for one unit; returns (and persists) its record."""
        name = self.unit_name(unit)
        arrow, marker = work / f"{name}.arrow", work / f"{name}.json"
        read_counts: Counter = Counter()
        errors: list[str] = []
        stats: dict[str, StageStats] = {}
        t0 = time.perf_counter()
        read_s = 0.0
        rows = read_out = read_bytes_out = 0
        skipped = None
        try:
            with (
                atomic_open(arrow) as sink,
                pa.ipc.new_file(sink, _schema(self.cfg.dedup.num_perm)) as writer,
            ):
                batches = read_unit(
                    unit, self.cfg.input.batch_size, self.cfg.input.text_field, read_counts, errors
                )
                while True:
                    r0 = time.perf_counter()
                    table = next(batches, None)
                    read_s += time.perf_counter() - r0
                    if table is None:
                        break
                    read_out += len(table)
                    read_bytes_out += nbytes(table.column(1))
                    table = self.chain(table, stats)
                    sig = signatures(table, self.cfg.dedup, stats)
                    writer.write_table(sig)
                    rows += len(sig)
        except UnitError as e:
            arrow.unlink(missing_ok=True)
            skipped = str(e)
            stats, rows, read_out, read_bytes_out = {}, 0, 0, 0
            read_counts = Counter(docs=0, bytes=read_counts["bytes"], **{"drop:unreadable_unit": 0})
        record = unit_record(
            unit,
            rows=rows,
            skipped=skipped,
            errors=errors,
            seconds=time.perf_counter() - t0,
            stages={"read": read_stats(read_counts, read_out, read_bytes_out, read_s), **stats},
        )
        write_json_atomic(marker, record)
        return record

    def phase1(self, units: list[Unit], work: Path) -> tuple[list[dict], int]:
        expected = {self.unit_name(u) for u in units}
        for p in work.iterdir():  # stale units (changed inputs/settings) and temporaries
            if p.is_dir():
                continue  # dedup-KEY/: the disk dedup's, which cleans it itself
            if p.name.startswith(".") or p.name.rsplit(".", 1)[0] not in expected:
                p.unlink()
        records, resumed = [], 0
        bar = progress(
            self.cfg.run.progress, total=len(units), desc="read/extract/filter", unit="unit"
        )
        for unit in units:
            marker = work / f"{self.unit_name(unit)}.json"
            if marker.is_file():
                record = read_record(marker)
                resumed += 1
            else:
                record = self.process_unit(unit, work)
            if record["skipped"]:
                print(f"warning: skipped {record['skipped']}", file=sys.stderr)
            records.append(record)
            bar.update(1)
        bar.close()
        return records, resumed

    # ---- phase 2 --------------------------------------------------------
    def tables(self, records: list[dict], work: Path, columns: list[str]):
        """(record, its survivors' ``columns``) of every unit not skipped, in order."""
        for r in records:
            if r["skipped"]:
                continue
            with pa.memory_map(str(work / f"{self._names[r['unit']]}.arrow")) as src:
                yield r, pa.ipc.open_file(src).read_all().select(columns)

    def dedup(self, records: list[dict], work: Path) -> tuple[np.ndarray, StageStats]:
        """The keep mask over all survivors of phase 1, in input order."""
        d = self.cfg.dedup
        t0 = time.perf_counter()
        in_memory = d.enabled and d.near and d.mode == "memory"
        hashes, sigs, lengths, texts, ids = [], [], [], [], []
        bar = progress(self.cfg.run.progress, total=len(records), desc="dedup", unit="unit")
        for _, t in self.tables(records, work, ["hash0", "hash1", "minhash", "text", "id"]):
            bar.update(1)
            ids.extend(t.column("id").chunks)  # memory-mapped: read only for failures
            hashes.append(
                np.stack([t.column("hash0").to_numpy(), t.column("hash1").to_numpy()], axis=1)
            )
            if in_memory:
                flat = pc.list_flatten(t.column("minhash")).to_numpy()
                sigs.append(flat.reshape(-1, d.num_perm))
                if d.verify == "exact":
                    # Memory-mapped, not read: only candidates' texts are touched.
                    texts.extend(t.column("text").chunks)
            lengths.append(pc.binary_length(t.column("text")).to_numpy() if len(t) else np.zeros(0))
        h = np.concatenate(hashes) if hashes else np.zeros((0, 2), np.uint64)

        def near_labels(idx: np.ndarray, failures: list) -> np.ndarray:
            if d.mode == "disk":
                return self.near_labels_disk(records, work, idx, failures)
            from fastllm.data.dedup import clusters_from_signatures, lsh_plan

            mode, bands, rows = lsh_plan(d)
            return clusters_from_signatures(
                np.ascontiguousarray(np.concatenate(sigs)[idx]),
                d.threshold,
                verify=mode,
                bands=bands,
                rows=rows,
                texts=pa.chunked_array(texts, pa.string()) if mode == "exact" else None,
                ngram=d.ngram,
                rows_of_texts=idx,
                failures=failures,
            )

        keep, stats = dedup_keep(
            h,
            np.concatenate(lengths) if lengths else np.zeros(0),
            d,
            near_labels,
            pa.chunked_array(ids, pa.string()),
        )
        bar.close()
        stats.seconds = time.perf_counter() - t0  # reading the units' columns included
        return keep, stats

    def near_labels_disk(
        self, records: list[dict], work: Path, idx: np.ndarray, failures: list
    ) -> np.ndarray:
        """Cluster labels of the documents ``idx`` (positions among them), from
        :func:`fastllm.data.dedup.disk.dedup_shards` over one Parquet file per
        unit; resumable (see the module docstring). The documents it failed
        on go to ``failures`` (positions among ``idx``)."""
        import pyarrow.parquet as pq

        from fastllm.data.dedup.disk import dedup_shards, read_labels

        units = [self._names[r["unit"]] for r in records if not r["skipped"]]
        key = hashlib.sha256(json.dumps(units).encode()).hexdigest()[:16]
        ddir = work / f"dedup-{key}"
        for p in work.glob("dedup-*"):  # another run's (changed units)
            if p != ddir:
                shutil.rmtree(p)
        total = sum(r["rows"] for r in records if not r["skipped"])
        keep = np.zeros(total, dtype=bool)
        keep[idx] = True
        inputs, start = [], 0
        for r, t in self.tables(records, work, ["text"]):
            k = keep[start : start + len(t)]
            start += len(t)
            path = ddir / "in" / f"{r['unit']:05d}.parquet"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    pq.write_table(t.filter(pa.array(k)), tmp)
            inputs.append(path)
        dedup_shards(
            inputs,
            ddir / "ooc",
            config=self.cfg.dedup,
            batch_size=self.cfg.input.batch_size,
            failures=failures,
        )
        return read_labels(ddir / "ooc")

    # ---- phase 3 --------------------------------------------------------
    def kept_texts(self, records, work, keep):
        """The kept documents' texts, in input order, one Arrow column per unit."""
        start = 0
        for _, t in self.tables(records, work, ["text"]):
            k = keep[start : start + len(t)]
            start += len(t)
            yield t.filter(pa.array(k)).column("text")

    def write_shards(self, records, work, keep, tok):
        """Tokenize the kept documents in input order into the shard sets;
        returns (manifests, tokenize stats, shard stats)."""
        shards = ShardSets(self.cfg, self.out, tok)
        tok_stats = StageStats()
        bs = self.cfg.input.batch_size
        bar = progress(
            self.cfg.run.progress, total=int(keep.sum()), desc="tokenize/shards", unit="doc"
        )
        start = 0
        for r, t in self.tables(records, work, ["text", "id"]):
            k = keep[start : start + len(t)]
            start += len(t)
            t = t.filter(pa.array(k))
            for off in range(0, len(t), bs):
                batch = t.slice(off, bs)
                texts = batch.column("text")
                t0 = time.perf_counter()
                failed: list[tuple[int, str]] = []
                ids, offsets = tok.encode_to_numpy(texts, disallowed_special=(), failures=failed)
                ids, offsets = drop_failed_tokens(batch, ids, offsets, failed, tok_stats)
                tok_stats.seconds += time.perf_counter() - t0
                if len(offsets) > 1:
                    shards.add(ids, offsets, source=r["source"])
                tok_stats.docs_in += len(texts)
                tok_stats.docs_out += len(offsets) - 1
                tok_stats.bytes_in += nbytes(texts)
                tok_stats.bytes_out += int(ids.nbytes)
                bar.update(len(texts))
        bar.close()
        manifests = shards.close()
        shards.stats.bytes_in = tok_stats.bytes_out
        return manifests, tok_stats, shards.stats

    # ---- the run ------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, out = self.cfg, self.out
        t_start = time.perf_counter()
        report = open_output(cfg, self.fingerprint)
        if report is not None:
            return report
        units = list_units(cfg.input.paths, cfg.input.html_pages_per_unit)
        work = out / WORK
        work.mkdir(parents=True, exist_ok=True)
        self._names = {u.index: self.unit_name(u) for u in units}
        records, resumed = self.phase1(units, work)
        keep, dedup_stats = self.dedup(records, work)
        tok = tokenizer_for(cfg, out, self.tokenizer, lambda: self.kept_texts(records, work, keep))
        manifests, tok_stats, shard_stats = self.write_shards(records, work, keep, tok)
        stages = merged_stages(records)
        stages["dedup"] = dedup_stats
        stages["tokenize"] = tok_stats
        stages["shards"] = shard_stats
        return write_report(
            cfg,
            self.fingerprint,
            records,
            resumed,
            stages,
            manifests,
            time.perf_counter() - t_start,
        )
