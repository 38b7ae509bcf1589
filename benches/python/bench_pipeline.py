"""Whole pipeline, HTML pages → token shards: fastllm vs datatrove.

Same pages (``html-dev/html``, the first ``--pages``), same GPT-2 tokenizer,
in one process, one after the other, the same stages on both sides:

- fastllm: ``fastllm.data.pipeline.run`` (read .html.gz → extract →
  GopherRepetition, GopherQuality, C4 (FineWeb's settings), FineWeb quality
  filters → MinHash/LSH dedup over the run → tokenize → Megatron shards),
  with the Rust kernels on 1 thread (per core) and on all cores. The stages
  datatrove's side lacks are off: the length filter, PII masking, language
  id, exact dedup;
- datatrove: its documented equivalent on one worker (1 core): pages as
  JSONL of raw HTML → Trafilatura → GopherRepetition, GopherQuality, C4Quality
  (``filter_no_terminal_punct=False``), FineWebQuality filters → MinHash
  (signatures, buckets, clusters, filter) → DocumentTokenizer (the same
  tokenizer.json).

MinHash settings differ slightly (fastllm 128 permutations, threshold 0.8,
verified; datatrove 14 buckets x 8 hashes), as do the extractors (fastllm's
Rust extractor vs Trafilatura), so the document counts differ a little.
Throughput is MB of (decompressed) HTML per second of wall time, per core.

    python benches/python/bench_pipeline.py [--pages 100] [--data DIR] [--no-datatrove]

Measured (2026-11-22, 2 x86_64 cores shared with other builds, all 380
pages = 102.4 MB, datatrove 0.10.1; the ratio is per core, fastllm on one
thread vs datatrove's one worker, both in the same run):

    load (1-min avg)  fastllm 1 thread        datatrove 1 worker   ratio
    4.3-5.3           3.23 s = 31.7 MB/s      90.5 s = 1.13 MB/s   28.0x
    6.4               4.85 s = 21.1 MB/s      83.8 s = 1.22 MB/s   17.3x
    8.0-10.0          7.84 s = 13.1 MB/s     116.8 s = 0.88 MB/s   14.9x

fastllm's short run suffers most from the other processes; on the quietest
run extraction is ~40% of its time and the four filter families ~15%. Both
sides keep about the same documents (fastllm 220, datatrove 233).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("FASTLLM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def run_fastllm(pages: Path, tok: Path, out: Path, threads: int) -> tuple[float, dict]:
    import fastllm
    from fastllm.data.config import PipelineConfig
    from fastllm.data.pipeline import run

    fastllm.set_num_threads(threads)
    cfg = PipelineConfig.load(
        None,
        [
            "--input.paths", str(pages),
            "--output.dir", str(out),
            "--tokenizer.path", str(tok),
            "--filter.min_chars", "0",
            "--filter.langid.enabled", "false",
            "--filter.c4.filter_no_terminal_punct", "false",
            "--pii.enabled", "false",
            "--dedup.exact", "false",
            "--run.progress", "false",
            "--run.force", "true",
        ],
    )  # fmt: skip
    t0 = time.perf_counter()
    report = run(cfg)
    return time.perf_counter() - t0, report


def _patch_xxhash() -> None:
    """datatrove 0.10 hands str to xxhash, which xxhash >= 4 refuses: encode
    as UTF-8 first (what older xxhash did), so its MinHash runs unchanged."""
    import datatrove.utils.hashes.xxhash as dx
    import xxhash

    def enc(d):
        return d.encode("utf-8") if isinstance(d, str) else d

    dx.xxhash32 = lambda d: xxhash.xxh32_intdigest(enc(d))
    dx.xxhash64 = lambda d: xxhash.xxh64_intdigest(enc(d))


def run_datatrove(jsonl: Path, tok: Path, work: Path) -> tuple[float, dict]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter

    _patch_xxhash()
    from loguru import logger

    logger.remove()  # datatrove logs every step to stderr
    mh = MinhashConfig()
    logs = str(work / "logs")

    def ex(name, pipeline, tasks=1):
        # workers=1: every task runs in turn on one core.
        return LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{logs}/{name}"
        )

    stages = [
        ex(
            "1-extract-filter-signatures",
            [
                JsonlReader(str(jsonl.parent), glob_pattern=jsonl.name),
                Trafilatura(favour_precision=True, timeout=30),
                GopherRepetitionFilter(),
                GopherQualityFilter(),
                C4QualityFilter(filter_no_terminal_punct=False),
                FineWebQualityFilter(),
                JsonlWriter(str(work / "filtered")),
                MinhashDedupSignature(output_folder=str(work / "sigs"), config=mh),
            ],
        ),
        ex(
            "2-buckets",
            [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=mh)],
            tasks=mh.num_buckets,  # datatrove requires one task per bucket
        ),
        ex(
            "3-cluster",
            [MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=mh)],
        ),
        ex(
            "4-filter-tokenize",
            [
                JsonlReader(str(work / "filtered")),
                MinhashDedupFilter(str(work / "remove")),
                DocumentTokenizer(
                    str(work / "tokens"),
                    tokenizer_name_or_path=str(tok),
                    eos_token="<|endoftext|>",
                    shuffle_documents=False,
                ),
            ],
        ),
    ]
    t0 = time.perf_counter()
    for s in stages:
        s.run()
    secs = time.perf_counter() - t0
    stats = json.loads((work / "logs" / "4-filter-tokenize" / "stats.json").read_text())
    tok_stats = next(s["stats"] for s in stats if "TOKENIZER" in s["name"])
    return secs, tok_stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=100, help="first N pages of html-dev")
    ap.add_argument("--data", help="shared data dir (default ../shared/data)")
    ap.add_argument("--no-datatrove", action="store_true")
    args = ap.parse_args()

    data = shared(args.data)
    tok = data / "tokenizers" / "gpt2" / "tokenizer.json"
    files = sorted((data / "html-dev" / "html").iterdir())[: args.pages]
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    try:
        pages = tmp / "pages"
        pages.mkdir()
        html_bytes = 0
        with open(tmp / "pages.jsonl", "w", encoding="utf-8") as f:
            for p in files:
                shutil.copy(p, pages / p.name)
                raw = gzip.decompress(p.read_bytes())
                html_bytes += len(raw)
                text = raw.decode("utf-8", "replace")
                f.write(json.dumps({"id": p.name, "text": text}) + "\n")
        mb = html_bytes / 1e6
        cores = len(os.sched_getaffinity(0))
        rows = []
        # Warm-up (imports, first kernel calls), untimed.
        run_fastllm(pages, tok, tmp / "warmup", cores)
        for threads in (1, cores):
            secs, rep = run_fastllm(pages, tok, tmp / f"fastllm{threads}", threads)
            t = rep["totals"]
            rows.append(
                (f"fastllm ({threads} thread{'s' if threads > 1 else ''})", threads, secs,
                 t["documents"], t["tokens"])
            )  # fmt: skip
        if not args.no_datatrove:
            try:
                import datatrove  # noqa: F401
            except ImportError:
                print("datatrove not installed: pip install datatrove trafilatura", file=sys.stderr)
            else:
                secs, rep = run_datatrove(tmp / "pages.jsonl", tok, tmp / "datatrove")

                def total(v):
                    return v.get("total", v) if isinstance(v, dict) else v

                t = rep.get("tokens", {})
                docs = t.get("n", "?") if isinstance(t, dict) else "?"
                toks = total(rep.get("tokens", "?"))
                rows.append(("datatrove (1 worker)", 1, secs, docs, toks))

        print(f"{len(files)} pages, {mb:.1f} MB of HTML (decompressed)")
        print(
            f"{'pipeline':24} {'cores':>5} {'sec':>8} {'MB/s':>8} {'MB/s/core':>10} {'docs':>6} {'tokens':>10}"
        )
        base = None
        for name, c, secs, docs, toks in rows:
            per_core = mb / secs / c
            if name.startswith("datatrove"):
                base = per_core
            print(
                f"{name:24} {c:5d} {secs:8.2f} {mb / secs:8.2f} {per_core:10.2f} {docs!s:>6} {toks!s:>10}"
            )
        if base:
            for name, c, secs, *_ in rows:
                if name.startswith("fastllm"):
                    print(f"{name}: {mb / secs / c / base:.1f}x datatrove per core")
        print(
            "stages (both): extract, Gopher repetition + quality, C4, FineWeb, MinHash dedup, "
            "GPT-2 tokenize, shards"
        )
        print("load: " + open("/proc/loadavg").read().strip())
        import fastllm

        print(
            f"command: {' '.join(sys.argv)}\nmachine: {platform.processor() or platform.machine()}, "
            f"{cores} cores available, Python {platform.python_version()}, "
            f"fastllm {getattr(fastllm, '__version__', '?')}"
            + (f", datatrove {importlib.metadata.version('datatrove')}" if base else "")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
