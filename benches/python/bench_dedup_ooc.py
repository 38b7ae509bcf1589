"""Out-of-core near-duplicate removal on a synthetic corpus: time and peak memory.

Writes --docs synthetic documents (random words from a Zipf-ish vocabulary,
--dup-rate of them near-copies of earlier ones with a few words changed) as
Parquet shards, then runs fastllm.data.dedup.disk.dedup_shards in a fresh child
process and reports its wall time and peak resident memory (getrusage
ru_maxrss), next to the size of the text and of the signatures, which the
out-of-core mode never holds at once. With --in-memory, the same corpus
through dedup.near_duplicate_clusters in another child, for comparison.

Run:  PYTHONPATH=python python benches/python/bench_dedup_ooc.py --docs 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHILD_OOC = """
import json, resource, sys, time
from fastllm.data.dedup import disk as dedup_ooc
paths, work, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
t = time.perf_counter()
report = dedup_ooc.dedup_shards(paths, work, out, batch_size=20000)
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "report": report.as_dict()}))
"""

CHILD_MEM = """
import json, resource, sys, time
import pyarrow.parquet as pq
from fastllm.data import dedup
paths = json.loads(sys.argv[1])
t = time.perf_counter()
texts = [s for p in paths for s in pq.read_table(p, columns=["text"]).column(0).to_pylist()]
labels = dedup.near_duplicate_clusters(texts)
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "report": dedup.report_from_labels(labels).as_dict()}))
"""


def generate(n, shards, dup_rate, out_dir, seed):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 0.8
    weights /= weights.sum()
    per = -(-n // shards)
    paths, nbytes, doc_id = [], 0, 0
    recent: list[list[str]] = []
    for s in range(shards):
        m = min(per, n - doc_id)
        texts = []
        lengths = rng.integers(20, 80, m)
        words = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=weights)]
        pos = 0
        for k in range(m):
            if recent and rng.random() < dup_rate:
                w = list(recent[rng.integers(len(recent))])
                for _ in range(max(1, len(w) // 50)):
                    w[rng.integers(len(w))] = str(vocab[rng.integers(len(vocab))])
            else:
                w = words[pos : pos + lengths[k]].tolist()
                pos += lengths[k]
                if len(recent) < 10_000:
                    recent.append(w)
                else:
                    recent[rng.integers(len(recent))] = w
            texts.append(" ".join(w))
        nbytes += sum(len(t) for t in texts)
        path = out_dir / f"part-{s:03d}.parquet"
        pq.write_table(pa.table({"id": np.arange(doc_id, doc_id + m), "text": texts}), path)
        paths.append(str(path))
        doc_id += m
    return paths, nbytes


def child(code, *args):
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if r.returncode != 0:
        sys.exit(f"child failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--shards", type=int, default=20)
    p.add_argument("--dup-rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--in-memory", action="store_true", help="also run the in-memory mode")
    a = p.parse_args()

    base = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="fastllm-ooc-"))
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    paths, nbytes = generate(a.docs, a.shards, a.dup_rate, data, a.seed)
    gen_secs = time.perf_counter() - t

    import fastllm

    print(f"command: {' '.join([sys.executable] + sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"threads {fastllm.get_num_threads()}"
    )
    print(
        f"versions: python {platform.python_version()}, fastllm {fastllm.__version__}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__}"
    )
    print(
        f"corpus: {a.docs} docs in {a.shards} Parquet shards, {nbytes / 1e6:.0f} MB of text "
        f"(generated in {gen_secs:.0f} s); signatures would be "
        f"{a.docs * 128 * 8 / 1e6:.0f} MB"
    )
    r = child(CHILD_OOC, json.dumps(paths), str(base / "work"), str(base / "out"))
    print(
        f"out-of-core: {r['secs']:.1f} s, {nbytes / 1e6 / r['secs']:.1f} MB/s, "
        f"peak RSS {r['maxrss_mb']:.0f} MB, report {r['report']}"
    )
    if a.in_memory:
        m = child(CHILD_MEM, json.dumps(paths))
        print(
            f"in-memory:   {m['secs']:.1f} s, peak RSS {m['maxrss_mb']:.0f} MB, "
            f"report {m['report']}"
        )
    if not a.dir:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
