"""Linear time on hostile WARC input: reads each kind of damage at 1x and 8x
the size with fastllm._core.WarcReader and prints the time ratio (8 means
linear; a quadratic case would show ~64). A measurement to run by hand, not
a test (tests assert no timings).

    python fuzz/scaling.py [--mb 2]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastllm import _core  # noqa: E402
from tests.data.warc_files import Page, capture, join  # noqa: E402


def unit_records() -> list[bytes]:
    return capture(0, Page("http://a.example/", b"<html><p>" + b"words " * 200 + b"</p></html>"))


def cases() -> dict[str, callable]:
    rng = random.Random(0)
    recs = unit_records()
    good = join(recs, True)
    bad_crc = bytearray(gzip.compress(recs[1]))
    bad_crc[-8] ^= 0xFF
    return {
        "clean, gzip per record": lambda n: good * (n // len(good) + 1),
        "random bytes": lambda n: rng.randbytes(n),
        "one endless header line": lambda n: b"WARC/1.0\r\nX: " + b"a" * n,
        "WARC/ lines, no records": lambda n: b"\nWARC/1.0\r\nbad\r\n" * (n // 16),
        "blank lines only": lambda n: b"\r\n" * (n // 2),
        "bad gzip CRC every member": lambda n: bytes(bad_crc) * (n // len(bad_crc) + 1),
        "huge Content-Length, then records": lambda n: (
            b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 99999999999\r\n\r\n"
            + join(recs, False) * (n // len(join(recs, False)) + 1)
        ),
        "gzip headers only": lambda n: b"\x1f\x8b\x08\x00" * (n // 4),
    }


def read(path: Path) -> int:
    r = _core.WarcReader(str(path), max_record_bytes=1 << 20)
    n = 0
    while (b := r.read_batch(1024)) is not None:
        n += len(b[0])
    return n


def timed(path: Path) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        read(path)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=2)
    args = ap.parse_args()
    n = int(args.mb * 1e6)
    print(f"# {' '.join([sys.executable, *sys.argv])}; {os.cpu_count()} cores")
    print(f"{'input':<36}{'1x s':>9}{'8x s':>9}{'ratio':>7}")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.warc"
        for name, make in cases().items():
            p.write_bytes(make(n))
            t1 = timed(p)
            p.write_bytes(make(8 * n))
            t8 = timed(p)
            print(f"{name:<36}{t1:>9.4f}{t8:>9.4f}{t8 / t1:>7.1f}")


if __name__ == "__main__":
    main()
