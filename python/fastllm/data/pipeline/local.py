"""``python -m fastllm.data run``: inputs → extract → filters → dedup →
tokenize → shards, restartable.

The local engine works in three phases inside ``output.dir``:

1. per unit (a file, or a group of HTML pages; see :mod:`fastllm.io.readers`):
   read → extract → filters, Arrow batch by batch, then the content hash and
   MinHash signature of each surviving document. The unit's survivors go to
   ``work/NAME.arrow`` and its counts to ``work/NAME.json``, each written to
   a temporary name and renamed; the ``.json`` comes last and marks the unit
   finished. NAME holds the unit's index, its files' (path, size, mtime) and
   the settings phase 1 depends on, so a rerun skips exactly the finished
   units whose inputs and settings are unchanged and redoes the rest.
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
3. tokenize the kept documents in input order and write ``.shards.tmp/``
   with :class:`fastllm.shards.ShardWriter`; when the manifest is written the
   directory is renamed to ``shards/``. A run killed here redoes phase 3
   from the finished units: the shard set is the unit of restart of this
   phase, and the result is byte-identical to an uninterrupted run.

``tokenizer.json`` (when trained in the run) and ``report.json`` are written
atomically too. A rerun of a finished output prints its report and does
nothing; ``--force`` (``run.force``) deletes what the pipeline wrote and redoes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import ConfigError, PipelineConfig
from fastllm.data.report import StageStats, merge, stages_dict, write_json_atomic
from fastllm.data.stages import Extract, Stage, build_filters
from fastllm.io.readers import Unit, UnitError, list_units, read_unit

SHARDS = "shards"
WORK = "work"
REPORT = "report.json"
TOKENIZER = "tokenizer.json"
MAX_ERRORS = 1000  # error messages kept in the report (the counts are complete)


def _bytes(col: Any) -> int:
    if len(col) == 0:
        return 0
    return int(pc.sum(pc.binary_length(col)).as_py() or 0)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _kill_hook(point: str, count: int) -> None:
    """Test hook: ``FASTLLM_PIPELINE_KILL=unit:2`` SIGKILLs this process after
    the second unit is finished (``batch:N``: after the N-th batch written
    to a unit's temporary file; ``shard:N``: after the N-th batch added to
    the shard writer; ``dedup:1``: when the disk dedup's inputs are written),
    so tests can interrupt a run at a known point."""
    want = os.environ.get("FASTLLM_PIPELINE_KILL")
    if want and want == f"{point}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


def _progress(enabled: bool, **kw):
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled, file=sys.stderr, **kw)


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


class Runner:
    """One run of the pipeline for a checked config."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = Path(cfg.output.dir)
        self.extract = Extract(cfg.run.extract)
        # Loading the hooks is part of config checking: before any work.
        self.filters: list[Stage] = build_filters(cfg.filter, cfg.pii)
        self.tokenizer = None
        if cfg.tokenizer.path:
            from fastllm.tokenizer import Tokenizer

            try:
                self.tokenizer = Tokenizer.from_file(cfg.tokenizer.path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"tokenizer.path: {cfg.tokenizer.path}: {e}") from None
        self._batches = 0  # batches written in this process (for the kill hook)
        self.fingerprint = cfg.fingerprint("input", "filter", "pii", "dedup") + (
            "x" if cfg.run.extract else "r"
        )

    # ---- per batch ------------------------------------------------------
    def stage_batch(self, table: pa.Table, stats: dict[str, StageStats]) -> pa.Table:
        """extract and filters on one batch, counting into ``stats``."""
        for stage in [self.extract, *self.filters]:
            t0 = time.perf_counter()
            col = "html" if "html" in table.column_names else "text"
            s = stats.setdefault(stage.name, StageStats())
            s.docs_in += len(table)
            s.bytes_in += _bytes(table.column(col))
            table, dropped, *errors = stage(table)
            s.docs_out += len(table)
            s.bytes_out += _bytes(table.column("text"))
            for k, v in dropped.items():
                s.dropped[k] = s.dropped.get(k, 0) + int(v)
            if errors:  # the documents dropped as internal_error, by id
                s.add(StageStats(errors=list(errors[0])))
            s.seconds += time.perf_counter() - t0
        return table

    def signatures(self, table: pa.Table) -> pa.Table:
        from fastllm.data.dedup import content_hashes, minhash

        d = self.cfg.dedup
        n = len(table)
        texts = table.column("text")  # read in place by Rust, no to_pylist
        hashes = content_hashes(texts) if n else np.zeros((0, 2), np.uint64)
        sigs = minhash(texts, d.num_perm, d.ngram, d.seed) if n and d.near else None
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

    # ---- phase 1 --------------------------------------------------------
    def unit_name(self, unit: Unit) -> str:
        return f"{unit.index:05d}-{unit.key()}-{self.fingerprint}"

    def process_unit(self, unit: Unit, work: Path) -> dict[str, Any]:
        """Phase 1 for one unit; returns (and persists) its record."""
        name = self.unit_name(unit)
        arrow, marker = work / f"{name}.arrow", work / f"{name}.json"
        tmp = work / f".{name}.arrow.tmp"
        read_counts: Counter = Counter()
        errors: list[str] = []
        stats: dict[str, StageStats] = {}
        t0 = time.perf_counter()
        read_s = 0.0
        rows = 0
        skipped = None
        try:
            with (
                pa.OSFile(str(tmp), "wb") as sink,
                pa.ipc.new_file(sink, _schema(self.cfg.dedup.num_perm)) as writer,
            ):
                batches = read_unit(
                    unit, self.cfg.input.batch_size, self.cfg.input.text_field, read_counts, errors
                )
                read_out = read_bytes_out = 0
                while True:
                    r0 = time.perf_counter()
                    table = next(batches, None)
                    read_s += time.perf_counter() - r0
                    if table is None:
                        break
                    read_out += len(table)
                    read_bytes_out += _bytes(table.column(1))
                    table = self.stage_batch(table, stats)
                    s0 = time.perf_counter()
                    sig = self.signatures(table)
                    sst = stats.setdefault("signatures", StageStats())
                    sst.docs_in += len(table)
                    sst.docs_out += len(table)
                    sst.bytes_in = sst.bytes_out = sst.bytes_in + _bytes(table.column("text"))
                    sst.seconds += time.perf_counter() - s0
                    writer.write_table(sig)
                    rows += len(table)
                    self._batches += 1
                    _kill_hook("batch", self._batches)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, arrow)
        except UnitError as e:
            tmp.unlink(missing_ok=True)
            arrow.unlink(missing_ok=True)
            skipped = str(e)
            stats, rows, read_out, read_bytes_out = {}, 0, 0, 0
            read_counts = Counter(docs=0, bytes=read_counts["bytes"], **{"drop:unreadable_unit": 0})
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        read = StageStats(
            docs_in=read_counts["docs"],
            docs_out=read_out,
            bytes_in=read_counts["bytes"],
            bytes_out=read_bytes_out,
            dropped={k[5:]: v for k, v in read_counts.items() if k.startswith("drop:") and v},
            flagged={k[5:]: v for k, v in read_counts.items() if k.startswith("flag:")},
            seconds=read_s,
        )
        record = {
            "unit": unit.index,
            "files": [str(f) for f in unit.files],
            "source": unit.source,
            "input_bytes": unit.nbytes(),
            "rows": rows,
            "skipped": skipped,
            "errors": errors[:MAX_ERRORS],
            "seconds": time.perf_counter() - t0,
            "stages": stages_dict({"read": read, **stats}),
        }
        write_json_atomic(marker, record)
        return record

    def phase1(self, units: list[Unit], work: Path) -> tuple[list[dict], int]:
        import json

        expected = {self.unit_name(u) for u in units}
        for p in work.iterdir():  # stale units (changed inputs/settings) and temporaries
            if p.is_dir():
                continue  # dedup-KEY/: the disk dedup's, which cleans it itself
            if p.name.startswith(".") or p.name.rsplit(".", 1)[0] not in expected:
                p.unlink()
        records, resumed = [], 0
        bar = _progress(
            self.cfg.run.progress, total=len(units), desc="read/extract/filter", unit="unit"
        )
        for unit in units:
            name = self.unit_name(unit)
            marker = work / f"{name}.json"
            if marker.is_file():
                record = json.loads(marker.read_text(encoding="utf-8"))
                resumed += 1
            else:
                record = self.process_unit(unit, work)
                _kill_hook("unit", unit.index + 1)
            if record["skipped"]:
                print(f"warning: skipped {record['skipped']}", file=sys.stderr)
            records.append(record)
            bar.update(1)
        bar.close()
        return records, resumed

    # ---- phase 2 --------------------------------------------------------
    def tables(self, records: list[dict], work: Path, columns: list[str]):
        for r in records:
            if r["skipped"]:
                continue
            name = self.unit_name_of(r)
            with pa.memory_map(str(work / f"{name}.arrow")) as src:
                yield r, pa.ipc.open_file(src).read_all().select(columns)

    def unit_name_of(self, record: dict) -> str:
        return self._names[record["unit"]]

    def dedup(self, records: list[dict], work: Path) -> tuple[np.ndarray, StageStats]:
        """The keep mask over all survivors of phase 1, in input order."""
        from fastllm.data.dedup import clusters_from_signatures

        d = self.cfg.dedup
        t0 = time.perf_counter()
        hashes, sigs, nbytes, texts = [], [], [], []
        bar = _progress(self.cfg.run.progress, total=len(records), desc="dedup", unit="unit")
        for _, t in self.tables(records, work, ["hash0", "hash1", "minhash", "text"]):
            bar.update(1)
            hashes.append(
                np.stack([t.column("hash0").to_numpy(), t.column("hash1").to_numpy()], axis=1)
            )
            if d.near and d.mode == "memory":
                flat = pc.list_flatten(t.column("minhash")).to_numpy()
                sigs.append(flat.reshape(-1, d.num_perm))
                if d.verify == "exact":
                    # Memory-mapped, not read: only candidates' texts are touched.
                    texts.extend(t.column("text").chunks)
            nbytes.append(pc.binary_length(t.column("text")).to_numpy() if len(t) else np.zeros(0))
        h = np.concatenate(hashes) if hashes else np.zeros((0, 2), np.uint64)
        lengths = np.concatenate(nbytes) if nbytes else np.zeros(0)
        n = len(h)
        keep = np.ones(n, dtype=bool)
        stats = StageStats(docs_in=n, bytes_in=int(lengths.sum()))
        if d.enabled and d.exact and n:
            # One 16-byte key per document; return_index is the first occurrence.
            keys = np.ascontiguousarray(h).view(np.dtype((np.void, 16))).ravel()
            _, first = np.unique(keys, return_index=True)
            keep[:] = False
            keep[first] = True
            if n - len(first):
                stats.dropped["exact_duplicate"] = n - len(first)
        if d.enabled and d.near and n:
            idx = np.flatnonzero(keep)
            if d.mode == "disk":
                labels = self.near_dedup_disk(records, work, keep)
            else:
                s = np.ascontiguousarray(np.concatenate(sigs)[idx])
                labels = clusters_from_signatures(
                    s,
                    d.threshold,
                    verify=False if d.verify == "none" else d.verify,
                    texts=pa.chunked_array(texts) if d.verify == "exact" else None,
                    ngram=d.ngram,
                    rows_of_texts=idx,
                )
            near = labels != np.arange(len(idx))
            keep[idx[near]] = False
            if near.any():
                stats.dropped["near_duplicate"] = int(near.sum())
        bar.close()
        stats.docs_out = int(keep.sum())
        stats.bytes_out = int(lengths[keep].sum())
        stats.seconds = time.perf_counter() - t0
        return keep, stats

    def near_dedup_disk(self, records: list[dict], work: Path, keep: np.ndarray) -> np.ndarray:
        """Cluster labels of the documents ``keep`` marks (global index among
        them), from :func:`fastllm.data.dedup.disk.dedup_shards` over one Parquet
        file per unit; resumable (see the module docstring)."""
        import hashlib
        import json

        import pyarrow.parquet as pq

        from fastllm.data.dedup.disk import dedup_shards

        d = self.cfg.dedup
        units = [self.unit_name_of(r) for r in records if not r["skipped"]]
        key = hashlib.sha256(json.dumps(units).encode()).hexdigest()[:16]
        ddir = work / f"dedup-{key}"
        for p in work.glob("dedup-*"):  # another run's (changed units)
            if p != ddir:
                shutil.rmtree(p)
        (ddir / "in").mkdir(parents=True, exist_ok=True)
        inputs, start = [], 0
        for r, t in self.tables(records, work, ["text"]):
            k = keep[start : start + len(t)]
            start += len(t)
            path = ddir / "in" / f"{r['unit']:05d}.parquet"
            if not path.is_file():
                tmp = path.with_name(f".{path.name}.tmp")
                pq.write_table(t.filter(pa.array(k)), tmp)
                os.replace(tmp, path)
            inputs.append(path)
        _kill_hook("dedup", 1)
        dedup_shards(
            inputs,
            ddir / "ooc",
            threshold=d.threshold,
            num_perm=d.num_perm,
            ngram=d.ngram,
            seed=d.seed,
            verify=False if d.verify == "none" else d.verify,
            batch_size=self.cfg.input.batch_size,
        )
        from fastllm.data.dedup.disk import read_labels

        return read_labels(ddir / "ooc")

    # ---- tokenizer --------------------------------------------------------
    def get_tokenizer(self, records, work, keep):
        if self.tokenizer is not None:
            return self.tokenizer
        from fastllm.tokenizer import Tokenizer

        path = self.out / TOKENIZER
        if path.is_file():
            return Tokenizer.from_file(path)
        sample: list[str] = []
        start = 0
        want = self.cfg.tokenizer.train_sample_docs
        for _, t in self.tables(records, work, ["text"]):
            k = keep[start : start + len(t)]
            start += len(t)
            sample += t.filter(pa.array(k)).column("text").to_pylist()[: want - len(sample)]
            if len(sample) >= want:
                break
        tok = Tokenizer.train(
            sample, self.cfg.tokenizer.train_vocab_size, show_progress=self.cfg.run.progress
        )
        tmp = path.with_name(f".{TOKENIZER}.tmp")
        tmp.write_text(tok.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return Tokenizer.from_file(path)

    # ---- phase 3 --------------------------------------------------------
    def write_shards(self, records, work, keep, tok) -> tuple[dict, StageStats, StageStats]:
        from fastllm.shards import ShardWriter

        tmp = self.out / ".shards.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tok_stats, shard_stats = StageStats(), StageStats()
        bs = self.cfg.input.batch_size
        bar = _progress(
            self.cfg.run.progress, total=int(keep.sum()), desc="tokenize/shards", unit="doc"
        )
        writer = ShardWriter(
            tmp,
            tokenizer=tok,
            max_shard_bytes=self.cfg.output.max_shard_bytes,
            prefix=self.cfg.output.prefix,
        )
        added = 0
        start = 0
        for r, t in self.tables(records, work, ["text"]):
            k = keep[start : start + len(t)]
            start += len(t)
            t = t.filter(pa.array(k))
            for off in range(0, len(t), bs):
                texts = t.column("text").slice(off, bs)
                t0 = time.perf_counter()
                ids, offsets = tok.encode_to_numpy(texts, disallowed_special=())
                t1 = time.perf_counter()
                writer.add(ids, offsets, source=r["source"])
                t2 = time.perf_counter()
                tok_stats.docs_in += len(texts)
                tok_stats.docs_out += len(texts)
                tok_stats.bytes_in += _bytes(texts)
                tok_stats.bytes_out += int(ids.nbytes)
                tok_stats.seconds += t1 - t0
                shard_stats.seconds += t2 - t1
                shard_stats.docs_in += len(texts)
                added += 1
                bar.update(len(texts))
                _kill_hook("shard", added)
        bar.close()
        t0 = time.perf_counter()
        manifest = writer.close()
        shard_stats.seconds += time.perf_counter() - t0
        shard_stats.docs_out = manifest["documents"]
        shard_stats.bytes_in = tok_stats.bytes_out
        shard_stats.bytes_out = sum(
            f["bytes"] for s in manifest["shards"] for f in s["files"].values()
        )
        final = self.out / SHARDS
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        return manifest, tok_stats, shard_stats

    # ---- the run ------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, out = self.cfg, self.out
        t_start = time.perf_counter()
        if cfg.run.force:
            clean(out)
        report = finished_report(out, self.fingerprint)
        if report is not None:
            return report
        units = list_units(cfg.input.paths, cfg.input.html_pages_per_unit)
        work = out / WORK
        work.mkdir(parents=True, exist_ok=True)
        self._names = {u.index: self.unit_name(u) for u in units}
        records, resumed = self.phase1(units, work)
        keep, dedup_stats = self.dedup(records, work)
        tok = self.get_tokenizer(records, work, keep)
        manifest, tok_stats, shard_stats = self.write_shards(records, work, keep, tok)

        stages: dict[str, StageStats] = {}
        for r in records:
            merge(stages, r["stages"])
        stages["dedup"] = dedup_stats
        stages["tokenize"] = tok_stats
        stages["shards"] = shard_stats
        return self.finish(records, resumed, stages, manifest, time.perf_counter() - t_start)

    def finish(self, records, resumed, stages, manifest, seconds) -> dict[str, Any]:
        input_bytes = sum(r["input_bytes"] for r in records)
        cores = _cores()
        mbps = input_bytes / 1e6 / seconds if seconds > 0 else 0.0
        report = {
            "fingerprint": self.fingerprint,
            "engine": self.cfg.run.engine,
            "units": len(records),
            "resumed_units": resumed,
            "skipped_units": [r["skipped"] for r in records if r["skipped"]],
            "errors": [e for r in records for e in r["errors"]][:MAX_ERRORS],
            "stages": stages_dict(stages),
            "totals": {
                "documents": manifest["documents"],
                "tokens": manifest["tokens"],
                "shards": len(manifest["shards"]),
                "oversized_documents": manifest.get("oversized_documents", 0),
                "sources": manifest["sources"],
                "input_bytes": input_bytes,
                "seconds": seconds,
                "cores": cores,
                "mb_per_s": mbps,
                "mb_per_s_per_core": mbps / cores,
            },
            "config": self.cfg.to_dict(),
        }
        write_json_atomic(self.out / REPORT, report)
        return report


def finished_report(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The report of a run already finished in ``out`` (marked
    ``finished_before``), None when there is none; a ConfigError when it was
    finished with other settings (both engines check this before any work)."""
    if not ((out / SHARDS / "manifest.json").is_file() and (out / REPORT).is_file()):
        return None
    import json

    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    if report.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{out}: finished with other settings (input/filter/pii/dedup/run.extract); "
            "use --force to redo it, or another --output"
        )
    report["finished_before"] = True
    return report


def clean(out: Path) -> None:
    """Remove what the pipeline writes in ``out`` (and nothing else)."""
    for name in (SHARDS, WORK, ".shards.tmp"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in (REPORT, TOKENIZER):
        (out / name).unlink(missing_ok=True)


def run_local(cfg: PipelineConfig) -> dict[str, Any]:
    """The local engine for ``cfg`` (checked); returns the report."""
    runner = Runner(cfg)  # loads the tokenizer and the filter hooks: config errors first
    Path(cfg.output.dir).mkdir(parents=True, exist_ok=True)
    return runner.run()
