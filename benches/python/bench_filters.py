"""Quality filters: datatrove vs fastllm, MB/s of text per core.

Same documents (pieces of ../shared/data/text, 5–20 KB each, the parity
test's sample), same process, one thread each; datatrove's filters are
called directly (``filter(doc)``), fastllm's through
``fastllm.data.filters.quality_filter`` with one family switched on. Each
datatrove is timed once (a pass takes tens of seconds), fastllm ``--repeat``
times with the best pass counting. Also prints
fastllm's four families chained on all threads.

    python benches/python/bench_filters.py [--docs-per-file 6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import fastllm  # noqa: E402
from fastllm.data.filters import QualityFilterConfig, quality_filter  # noqa: E402
from tests.data.filter_docs import load_pieces  # noqa: E402

FAMILIES = ["gopher_quality", "gopher_repetition", "c4", "fineweb"]


def only(name: str) -> QualityFilterConfig:
    return QualityFilterConfig(
        **{
            f: (
                QualityFilterConfig.__dataclass_fields__[f].default_factory() if f == name else None
            )
            for f in FAMILIES
        }
    )


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--docs-per-file", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = os.environ.get("FASTLLM_SHARED_DATA")
    data = (
        Path(args.data)
        if args.data
        else (Path(env) if env else REPO.parent / "shared" / "data") / "text"
    )
    docs = load_pieces(data, max_docs_per_file=args.docs_per_file)
    texts = [t for _, t in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6

    from datatrove.data import Document
    from datatrove.pipeline import filters as dt

    peers = {
        "gopher_quality": dt.GopherQualityFilter(),
        "gopher_repetition": dt.GopherRepetitionFilter(),
        "c4": dt.C4QualityFilter(),
        "fineweb": dt.FineWebQualityFilter(),
    }
    print(f"# {' '.join([sys.executable, *sys.argv])}")
    print(
        f"# datatrove {importlib.metadata.version('datatrove')}, fastllm {fastllm.__version__}, "
        f"python {platform.python_version()}, {platform.machine()} {os.cpu_count()} cores"
    )
    print(f"# {len(texts)} documents, {mb:.2f} MB")
    print(f"{'filter':<20}{'datatrove MB/s':>16}{'fastllm MB/s':>16}{'ratio':>10}")
    fastllm.set_num_threads(1)
    for name in FAMILIES:
        f = peers[name]
        # warm spaCy (loads on first use) outside the timing
        f.filter(Document(text=texts[0], id="warm"))
        t_dt = best(
            lambda f=f: [f.filter(Document(text=t, id=str(i))) for i, t in enumerate(texts)],
            1,
        )
        cfg = only(name)
        quality_filter(texts[:2], cfg)
        t_us = best(lambda cfg=cfg: quality_filter(texts, cfg), args.repeat)
        print(f"{name:<20}{mb / t_dt:>16.2f}{mb / t_us:>16.1f}{t_dt / t_us:>9.0f}x")
    n = os.cpu_count() or 1
    fastllm.set_num_threads(n)
    t_all = best(lambda: quality_filter(texts), args.repeat)
    print(f"fastllm, all four chained, {n} threads: {mb / t_all:.1f} MB/s")


if __name__ == "__main__":
    main()
