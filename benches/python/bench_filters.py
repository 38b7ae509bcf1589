"""Quality filters: datatrove vs fastllm, MB/s of text per core.

Same documents (pieces of ../shared/data/text, 5–20 KB each, the parity
test's sample), same process, one thread each; datatrove's filters are
called directly (``filter(doc)``), fastllm's through
``fastllm.data.filters.quality_filter`` with one family switched on. Each
datatrove is timed once (a pass takes tens of seconds), fastllm ``--repeat``
times with the best pass counting. Also prints
fastllm's four families chained on all threads.

Then the same documents as a pyarrow table, all threads: the filter stage
(``filter_stage``) and two kernels fed an Arrow column the way they were
before the zero-copy path (``to_pylist()``: every document copied into a
Python str, then checked and borrowed by Rust) and as they are now (the
column's buffers read in place through the Arrow C data interface).
Last, the per-batch stages (``filter_stage``, ``language_stage``, the
pipeline's ``LangId`` and ``Pii`` stages) on that table, all threads.
``--skip-datatrove`` prints only those two tables.

    python benches/python/bench_filters.py [--docs-per-file 6] [--repeat 3] [--skip-datatrove]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import fastllm  # noqa: E402
from fastllm.data.dedup import content_hashes  # noqa: E402
from fastllm.data.filters import QualityFilterConfig, filter_stage, quality_filter  # noqa: E402
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


def filter_stage_to_pylist(table, config=None, column="text"):
    """``filter_stage`` as it was before the Arrow path (main at 99952d6):
    the column went to ``quality_filter`` via ``to_pylist()``, and again
    through ``to_pylist()`` to put C4's shortened texts back."""
    import pyarrow as pa

    res = quality_filter(table.column(column).to_pylist(), config)
    new_texts = [
        o if o is not None else t
        for o, t in zip(res.texts, table.column(column).to_pylist(), strict=True)
    ]
    idx = table.schema.get_field_index(column)
    table = table.set_column(idx, column, pa.array(new_texts, table.schema.field(column).type))
    kept = table.filter(pa.array(res.keep, pa.bool_()))
    return kept, dict(Counter(r for r in res.reasons if r is not None))


def best_wall_cpu(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and best process CPU time (all threads) of ``repeat``
    passes. CPU time is the steadier of the two on a shared machine: it
    counts the work done, not the time waited for a core."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def arrow_table(texts: list[str], mb: float, repeat: int) -> None:
    """to_pylist vs zero-copy on Arrow input, all threads."""
    import pyarrow as pa

    from fastllm.data.langid import detect_languages
    from fastllm.data.pii import mask_pii

    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    col = table.column("text")
    n = os.cpu_count() or 1
    fastllm.set_num_threads(n)
    assert filter_stage(table)[0].equals(filter_stage_to_pylist(table)[0])
    rows = [
        ("filter_stage", lambda: filter_stage_to_pylist(table), lambda: filter_stage(table)),
        ("quality_filter", lambda: quality_filter(col.to_pylist()), lambda: quality_filter(col)),
        ("mask_pii", lambda: mask_pii(col.to_pylist()), lambda: mask_pii(col)),
        (
            "detect_languages",
            lambda: detect_languages(col.to_pylist()),
            lambda: detect_languages(col),
        ),
        ("content_hashes", lambda: content_hashes(col.to_pylist()), lambda: content_hashes(col)),
    ]
    print(f"# Arrow input ({n} threads): to_pylist (before) vs zero-copy (now);")
    print("# MB/s is wall clock, MB/cpu-s is MB per CPU-second of the process (all threads)")
    print(
        f"{'stage / kernel':<18}{'to_pylist MB/s':>16}{'zero-copy MB/s':>16}"
        f"{'to_pylist MB/cpu-s':>20}{'zero-copy MB/cpu-s':>20}{'cpu ratio':>11}"
    )
    for name, before, after in rows:
        before(), after()  # warm
        wb, cb = best_wall_cpu(before, repeat)
        wa, ca = best_wall_cpu(after, repeat)
        print(
            f"{name:<18}{mb / wb:>16.1f}{mb / wa:>16.1f}"
            f"{mb / cb:>20.1f}{mb / ca:>20.1f}{cb / ca:>10.2f}x"
        )


def stage_table(texts: list[str], mb: float, repeat: int) -> None:
    """The per-batch stages as the pipeline runs them on a pyarrow table, all
    threads: what the kernels' output costs on the way back (the stage's own
    Python work included)."""
    import pyarrow as pa

    from fastllm.data.config import LangIdConfig, PiiSection
    from fastllm.data.langid import language_stage
    from fastllm.data.stages import LangId, Pii

    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    n = os.cpu_count() or 1
    fastllm.set_num_threads(n)
    langid, pii = LangId(LangIdConfig(languages=["en"])), Pii(PiiSection())
    rows = [
        ("filter_stage", lambda: filter_stage(table)),
        ("language_stage", lambda: language_stage(table)),
        ("LangId stage", lambda: langid(table)),
        ("Pii stage", lambda: pii(table)),
    ]
    print(f"# stages on a pyarrow table ({n} threads)")
    print(f"{'stage':<18}{'MB/s':>10}{'MB/cpu-s':>12}")
    for name, fn in rows:
        fn()  # warm
        w, c = best_wall_cpu(fn, repeat)
        print(f"{name:<18}{mb / w:>10.1f}{mb / c:>12.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--docs-per-file", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-datatrove", action="store_true")
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
    if args.skip_datatrove:
        print(f"# {' '.join([sys.executable, *sys.argv])}")
        print(
            f"# fastllm {fastllm.__version__}, python {platform.python_version()}, "
            f"{platform.machine()} {os.cpu_count()} cores"
        )
        print(f"# {len(texts)} documents, {mb:.2f} MB")
        arrow_table(texts, mb, args.repeat)
        print()
        stage_table(texts, mb, args.repeat)
        return

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
    print()
    arrow_table(texts, mb, args.repeat)
    print()
    stage_table(texts, mb, args.repeat)


if __name__ == "__main__":
    main()
