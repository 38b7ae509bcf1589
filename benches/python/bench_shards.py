"""Shard writing speed, beside the disk's raw sequential write speed.

    python benches/python/bench_shards.py [--gb 1] [--dir DIR] [--repeat 3]

Writes ``--gb`` GB of token data (uint16 for a 50k vocabulary, then int32 for
a 128k one) as Megatron shards of 256 MiB with an EOS after every document,
through the Python binding from numpy ids + offsets (what the pipeline does),
without and with fsync before each rename, then with the manifest too
(sha256 of every file). Beside it: ``dd if=/dev/zero of=DIR/dd.tmp bs=1M
count=1024 conv=fdatasync`` (the disk) and the same without fdatasync (the
page cache). Prints the command, versions and machine.

Measured (2026-11-22, 2 x86_64 cores shared with other builds, /tmp on a
virtual disk, best of 3, GB/s of token data; load = 1-min average):

    load     dd fdatasync  dd cache  u16 plain  u16 fsync  u16 +manifest  i32 plain  i32 fsync  i32 +manifest
    6.7-7.8  188 MB/s      2.1 GB/s  0.89       0.62       0.28           0.72       0.34       0.35
    4.6-5.3  278 MB/s      3.0 GB/s  1.78       0.91       0.51           2.11       1.22       0.45
    3.6-4.9  414 MB/s      4.4 GB/s  1.12       0.73       0.36           1.07       0.73       0.24

Writing (narrowing copy + page cache) passes 1 GB/s on the quieter runs; the
manifest's sha256 re-reads every file (about 1 GB/s with SHA-NI on one
core; hashing in threads gave nothing on this loaded machine), so hashing
while writing, in Rust, is what would lift the last column.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastllm
from fastllm import _core
from fastllm.shards import ShardWriter


def dd_speed(d: Path, fdatasync: bool = True) -> str:
    out = d / "dd.tmp"
    cmd = ["dd", "if=/dev/zero", f"of={out}", "bs=1M", "count=1024"]
    cmd += ["conv=fdatasync"] if fdatasync else []
    r = subprocess.run(cmd, capture_output=True, text=True)
    out.unlink(missing_ok=True)
    m = re.search(r"copied, ([\d.]+) s, (.+)$", r.stderr.strip())
    return f"{' '.join(cmd)}: {m.group(2) if m else r.stderr.strip()}"


def docs(n_tokens: int, vocab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 4000, n_tokens // 2000 + 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = offsets[offsets <= n_tokens].astype(np.int64)
    ids = (np.arange(offsets[-1], dtype=np.uint64) * 2654435761 % (vocab - 1)).astype(np.uint32)
    return ids, offsets


def run(d: Path, ids, offsets, vocab: int, sync: bool, manifest: bool) -> float:
    out = d / "shards"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    t0 = time.perf_counter()
    if manifest:
        with ShardWriter(
            out, vocab_size=vocab, eos_id=vocab - 1, max_shard_bytes=256 << 20, sync=sync
        ) as w:
            w.add(ids, offsets, "bench")
    else:
        w = _core.ShardWriter(str(out), vocab, "shard", vocab - 1, 256 << 20, sync)
        w.add(ids, offsets, "bench")
        w.finish()
    dt = time.perf_counter() - t0
    shutil.rmtree(out)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="GB of token data written per run")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-shards-", dir=a.dir))
    try:
        print(f"command: {' '.join([sys.executable, *sys.argv])}")
        print(
            f"fastllm {fastllm.__version__}, numpy {np.__version__}, Python "
            f"{platform.python_version()}, {platform.platform()}, {os.cpu_count()} cores"
        )
        print(f"disk ({d}): {dd_speed(d)}")
        print(f"page cache ({d}): {dd_speed(d, fdatasync=False)}")
        print(
            f"{'vocab':>7} {'dtype':>6} {'fsync':>5} {'manifest':>8} {'GB/s written':>13} "
            f"{'Mtok/s':>8}"
        )
        for vocab, item in ((50257, 2), (128256, 4)):
            n = int(a.gb * 1e9 / item)
            ids, offsets = docs(n, vocab)
            n = int(offsets[-1]) + len(offsets) - 1  # with EOS
            for sync, manifest in ((False, False), (True, False), (True, True)):
                best = min(run(d, ids, offsets, vocab, sync, manifest) for _ in range(a.repeat))
                print(
                    f"{vocab:>7} {'uint16' if item == 2 else 'int32':>6} "
                    f"{'yes' if sync else 'no':>5} {'yes' if manifest else 'no':>8} "
                    f"{n * item / best / 1e9:>13.2f} "
                    f"{n / best / 1e6:>8.0f}"
                )
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
