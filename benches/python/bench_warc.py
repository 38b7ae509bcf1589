"""WARC/WET reading: FastWARC vs fastllm, MB/s.

Builds Common Crawl-style files from the html-dev pages (warcinfo, then
request / response / metadata per page, each record its own gzip member;
WET: one conversion record per page), repeated to ``--mb`` of uncompressed
WARC, and reads them whole with each reader, one thread, in the same
process. Both return the same documents: (id, url, payload bytes) of HTML
responses with HTTP headers removed, or of conversion records. FastWARC:
``ArchiveIterator(record_types=..., parse_http=True)`` and
``record.reader.read()``; fastllm: ``fastllm._core.WarcReader.read_batch``
(payloads in one buffer, ready for Arrow), and the Arrow tables of
``fastllm.io.readers.read_unit``. MB/s counts the file's bytes as stored
(compressed for .gz) and, second, the uncompressed WARC bytes. Best of
``--repeat``.

    python benches/python/bench_warc.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
# numpy's OpenBLAS threads spin beside single-threaded readers on small
# machines; neither reader uses BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import fastllm  # noqa: E402
from fastllm import _core  # noqa: E402
from fastllm.io.readers import list_units, read_unit  # noqa: E402
from tests.io.warc_files import (  # noqa: E402
    html_dev_pages,
    html_dev_texts,
    join,
    warc_records,
    wet_records,
)

HTML = ("text/html", "application/xhtml+xml")


def fastwarc_read(path: Path, wet: bool) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    kind = WarcRecordType.conversion if wet else WarcRecordType.response
    n = 0
    with open(path, "rb") as f:
        for r in ArchiveIterator(f, record_types=kind, parse_http=not wet):
            if not wet:
                declared = r.headers.get("WARC-Identified-Payload-Type") or (
                    r.http_headers.get("Content-Type") if r.http_headers else None
                )
                media = (declared or "").split(";")[0].strip().lower()
                if media and media not in HTML:
                    continue
            body = r.reader.read()
            _ = (r.record_id, r.headers.get("WARC-Target-URI"), body)
            n += 1
    return n


def fastllm_read(path: Path, wet: bool) -> int:
    r = _core.WarcReader(str(path), wet=wet)
    n = 0
    while (b := r.read_batch(1024)) is not None:
        n += len(b[0])
    return n


def fastllm_arrow(path: Path, wet: bool) -> int:
    (unit,) = list_units([str(path)], 1)
    return sum(len(t) for t in read_unit(unit, 1024, "text", Counter(), []))


def best(fn, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--mb", type=float, default=200, help="uncompressed WARC size to build")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = os.environ.get("FASTLLM_SHARED_DATA")
    root = (
        Path(args.data)
        if args.data
        else (Path(env) if env else REPO.parent / "shared" / "data") / "html-dev"
    )
    warc = warc_records(html_dev_pages(root))
    wet = wet_records(html_dev_texts(root))
    size = sum(map(len, warc))
    copies = max(1, round(args.mb * 1e6 / size))
    # Repeating whole files keeps every record id unique enough for reading
    # (ids repeat, which neither reader cares about).
    warc_all = warc * copies
    wet_all = wet * max(1, round(args.mb * 1e6 / sum(map(len, wet))))

    print(f"# {' '.join([sys.executable, *sys.argv])}")
    print(
        f"# fastwarc {importlib.metadata.version('fastwarc')}, fastllm {fastllm.__version__}, "
        f"python {platform.python_version()}, {platform.machine()} {os.cpu_count()} cores"
    )
    fastllm.set_num_threads(1)
    head = (
        f"{'file':<12}{'MB stored':>10}{'MB raw':>8}{'docs':>7}"
        f"{'FastWARC MB/s':>15}{'fastllm MB/s':>14}{'ratio':>7}{'fastllm→Arrow MB/s':>20}"
    )
    print(head)
    with tempfile.TemporaryDirectory() as d:
        for name, records, wet_kind in (
            ("warc.gz", warc_all, False),
            ("warc", warc_all, False),
            ("warc.wet.gz", wet_all, True),
            ("wet", wet_all, True),
        ):
            path = Path(d) / f"bench.{name}"
            path.write_bytes(join(records, gzip_per_record=name.endswith(".gz")))
            stored = path.stat().st_size / 1e6
            raw = sum(map(len, records)) / 1e6
            t_fw, n_fw = best(lambda p=path, w=wet_kind: fastwarc_read(p, w), args.repeat)
            t_us, n_us = best(lambda p=path, w=wet_kind: fastllm_read(p, w), args.repeat)
            t_ar, n_ar = best(lambda p=path, w=wet_kind: fastllm_arrow(p, w), args.repeat)
            assert n_fw == n_us == n_ar, (n_fw, n_us, n_ar)
            print(
                f"{name:<12}{stored:>10.1f}{raw:>8.1f}{n_us:>7}"
                f"{stored / t_fw:>15.1f}{stored / t_us:>14.1f}{t_fw / t_us:>6.2f}x"
                f"{stored / t_ar:>20.1f}"
            )
            path.unlink()
    print("# MB/s over the bytes as stored; raw MB/s = stored MB/s × MB raw / MB stored")


if __name__ == "__main__":
    main()
