"""Near-duplicate detection: fastllm vs datasketch vs rensa, quality and speed.

The benchmark: real documents from ../shared/data/text (those with at least
--min-words words, cut to --max-words) plus one edited copy of each at every
edit rate in --rates; an edit, at each word with probability `rate`, is a
deletion, an insertion or a substitution (a word drawn from the corpus),
one third each. Ground truth: every pair of documents whose word-5-gram
shingle sets (fastllm's normalization, which tests/dedup checks against a
pure-Python reference) have exact Jaccard >= --threshold, found by an exact
all-pairs prefix-filter join.

Each method reports near-duplicate pairs; recall and precision are over those
pairs against the true pairs. Clustering those pairs (union-find) joins
chains (A~B, B~C, A!~C), so the "cluster" columns, over pairs of documents
in one cluster, show what removal sees.
  fastllm     dedup.minhash, then the LSH candidates (near_duplicate_pairs,
              verify=False) verified by exact shingle Jaccard
              (dedup.shingle_jaccard), as near_duplicate_clusters does by
              default (verify=True means exact where the texts are at hand);
              second row: verified by signature agreement >= threshold
              (verify="signature", what the Ray mode does)
  datasketch  MinHash.update_batch + MinHashLSH(threshold) insert/query
  rensa       RMinHash per document (update) and, as a second row, the bulk
              RMinHash.digest_matrix_from_token_sets; RMinHashLSH with
              16 bands (rensa needs num_perm % bands == 0)
The peers get Python shingling (regex words, 5-grams joined by spaces), as a
user would write it; their MB/s include it. MB/s = UTF-8 bytes of text /
seconds for text -> signatures (best of --repeat). Exact dedup MB/s is
dedup.content_hashes on the same texts, then on each kind of text in
../shared/data/text (file name prefix: English books, multilingual, code,
wiki/news) alone.

Run:  PYTHONPATH=python python benches/python/bench_dedup.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import fastllm
from fastllm import _core
from fastllm.data import dedup
from fastllm.data.config import DedupConfig

HERE = Path(__file__).resolve()
WORD = re.compile(r"\w+")


def shared_text_dir() -> Path:
    env = os.environ.get("FASTLLM_SHARED_DATA")
    base = Path(env) if env else HERE.parents[3] / "shared" / "data"
    if not (base / "text").is_dir():
        base = Path("/work/shared/data")
    return base / "text"


def load_documents(min_words, max_words, limit, seed):
    docs = []
    for path in sorted(shared_text_dir().glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                words = json.loads(line)["text"].split()
                if len(words) >= min_words:
                    docs.append(" ".join(words[:max_words]))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))[:limit]
    return [docs[i] for i in order]


def texts_by_kind():
    """Whole documents of ../shared/data/text grouped by file name prefix."""
    kinds: dict[str, list[str]] = defaultdict(list)
    for path in sorted(shared_text_dir().glob("*.jsonl.gz")):
        kind = path.name.rsplit("-", 1)[0]
        with gzip.open(path, "rt", encoding="utf-8") as f:
            kinds[kind].extend(json.loads(line)["text"] for line in f)
    return dict(kinds)


def edit(words, rate, vocab, rng):
    out = []
    for w in words:
        if rng.random() >= rate:
            out.append(w)
            continue
        op = rng.integers(3)
        if op == 0:  # deletion
            continue
        if op == 1:  # insertion before the word
            out.append(vocab[rng.integers(len(vocab))])
            out.append(w)
        else:  # substitution
            out.append(vocab[rng.integers(len(vocab))])
    return out


def build_corpus(originals, rates, seed):
    rng = np.random.default_rng(seed)
    vocab = sorted({w for d in originals for w in d.split()})
    texts = list(originals)
    for d in originals:
        words = d.split()
        for r in rates:
            texts.append(" ".join(edit(words, r, vocab, rng)))
    order = rng.permutation(len(texts))
    return [texts[i] for i in order]


def true_pairs(texts, threshold, ngram):
    """All pairs with exact shingle-set Jaccard >= threshold (prefix filter)."""
    sets = [set(_core.shingle_hashes(t, ngram).tolist()) for t in texts]
    freq = defaultdict(int)
    for s in sets:
        for h in s:
            freq[h] += 1
    index = defaultdict(list)
    candidates = set()
    for i, s in enumerate(sets):
        if not s:
            continue
        toks = sorted(s, key=lambda h: (freq[h], h))
        prefix = len(toks) - math.ceil(threshold * len(toks)) + 1
        for h in toks[:prefix]:
            for j in index[h]:
                candidates.add((j, i))
            index[h].append(i)
    pairs = set()
    for i, j in candidates:
        a, b = sets[i], sets[j]
        if len(a & b) / len(a | b) >= threshold:
            pairs.add((i, j))
    empties = [i for i, s in enumerate(sets) if not s]
    pairs |= {(a, b) for k, a in enumerate(empties) for b in empties[k + 1 :]}
    return pairs


def pairs_of_labels(labels):
    groups = defaultdict(list)
    for i, c in enumerate(labels):
        groups[int(c)].append(i)
    return {(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1 :]}


def union_find_labels(n, edges):
    u = np.array([e[0] for e in edges], dtype=np.uint64)
    v = np.array([e[1] for e in edges], dtype=np.uint64)
    return _core.union_find(n, u, v)


def py_shingles(text, ngram):
    w = WORD.findall(text.lower())
    if len(w) <= ngram:
        return [" ".join(w)] if w else []
    return [" ".join(w[i : i + ngram]) for i in range(len(w) - ngram + 1)]


def best_of(fn, repeat):
    """Best wall seconds of `repeat` runs (the best process CPU seconds are
    left in LAST_CPU: a shared machine time-slices, and CPU time shows what
    one core does when it is ours)."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    LAST_CPU[0] = best_cpu
    return best, out


LAST_CPU = [0.0]


def run_fastllm(texts, a):
    out = {}
    for threads in (1, 2):
        fastllm.set_num_threads(threads)
        secs, sigs = best_of(lambda: dedup.minhash(texts, a.num_perm, a.ngram, 0), a.repeat)
        out[threads] = secs
        if threads == 1:
            out["cpu"] = LAST_CPU[0]
    pairs = {
        tuple(x) for x in dedup.near_duplicate_pairs(sigs, a.threshold, verify="signature").tolist()
    }
    return out, pairs, sigs


def run_datasketch(texts, a):
    from datasketch import MinHash, MinHashLSH

    def sign():
        ms = []
        for t in texts:
            m = MinHash(num_perm=a.num_perm, seed=1)
            m.update_batch([s.encode("utf-8") for s in py_shingles(t, a.ngram)])
            ms.append(m)
        return ms

    secs, ms = best_of(sign, 1)
    cpu = LAST_CPU[0]
    lsh = MinHashLSH(threshold=a.threshold, num_perm=a.num_perm)
    for i, m in enumerate(ms):
        lsh.insert(i, m)
    edges = {(i, j) for i, m in enumerate(ms) for j in lsh.query(m) if i < j}
    return {1: secs, "cpu": cpu}, edges, (lsh.b, lsh.r)


def rensa_lsh_pairs(ms, a, bands):
    from rensa import RMinHashLSH

    lsh = RMinHashLSH(threshold=a.threshold, num_perm=a.num_perm, num_bands=bands)
    for i, m in enumerate(ms):
        lsh.insert(i, m)
    return {(i, j) for i, m in enumerate(ms) for j in lsh.query(m) if i < j}


def run_rensa(texts, a, bands):
    from rensa import RMinHash

    def sign():
        ms = []
        for t in texts:
            m = RMinHash(num_perm=a.num_perm, seed=42)
            m.update(py_shingles(t, a.ngram))
            ms.append(m)
        return ms

    secs, ms = best_of(sign, a.repeat)
    cpu = LAST_CPU[0]
    bulk_secs, _ = best_of(
        lambda: RMinHash.digest_matrix_from_token_sets(
            [py_shingles(t, a.ngram) for t in texts], a.num_perm, 42
        ),
        a.repeat,
    )
    return (
        {1: secs, "cpu": cpu},
        {1: bulk_secs, "cpu": LAST_CPU[0]},
        rensa_lsh_pairs(ms, a, bands),
    )


def recall_precision(pred, truth):
    tp = len(pred & truth)
    return (tp / len(truth) if truth else 1.0), (tp / len(pred) if pred else 1.0)


def quality(n, pairs, truth):
    """(recall, precision) over the reported pairs, then over cluster pairs."""
    clustered = pairs_of_labels(union_find_labels(n, sorted(pairs)))
    return recall_precision(pairs, truth) + recall_precision(clustered, truth)


def version(mod):
    try:
        return __import__(mod).__version__
    except Exception:
        from importlib.metadata import version as v

        return v(mod)


def machine():
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=500, help="original documents")
    p.add_argument("--min-words", type=int, default=60)
    p.add_argument("--max-words", type=int, default=1500)
    p.add_argument("--rates", default="0.005,0.01,0.02,0.05,0.1,0.2")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--num-perm", type=int, default=128)
    p.add_argument("--ngram", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-peers", action="store_true")
    a = p.parse_args()

    originals = load_documents(a.min_words, a.max_words, a.docs, a.seed)
    rates = [float(r) for r in a.rates.split(",")]
    texts = build_corpus(originals, rates, a.seed)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    t0 = time.perf_counter()
    truth = true_pairs(texts, a.threshold, a.ngram)
    truth_secs = time.perf_counter() - t0

    print(f"command: {' '.join([sys.executable] + sys.argv)}")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"versions: python {platform.python_version()}, fastllm {fastllm.__version__}, "
        f"numpy {np.__version__}"
        + (
            ""
            if a.skip_peers
            else f", datasketch {version('datasketch')}, rensa {version('rensa')}"
        )
    )
    print(
        f"corpus: {len(originals)} originals + {len(rates)} edited copies each at rates {rates}: "
        f"{len(texts)} docs, {mb:.1f} MB; {len(truth)} true pairs with Jaccard >= {a.threshold} "
        f"(ground truth in {truth_secs:.1f} s)"
    )
    before = fastllm.get_num_threads()
    n = len(texts)
    rows = []
    fl_secs, fl_pairs, sigs = run_fastllm(texts, a)
    fl_params = dedup.lsh_params(a.threshold, a.num_perm, *dedup.VERIFIED_WEIGHTS)
    fastllm.set_num_threads(1)
    t0 = time.perf_counter()
    cand = dedup.near_duplicate_pairs(
        sigs, a.threshold, verify=False, bands=fl_params[0], rows=fl_params[1]
    )
    jac = dedup.shingle_jaccard(texts, cand, a.ngram)
    exact_secs = time.perf_counter() - t0
    exact_pairs = {tuple(x) for x in cand[jac >= a.threshold].tolist()}
    rows.append(
        ("fastllm (default: verify=exact)", fl_params, fl_secs, quality(n, exact_pairs, truth))
    )
    rows.append(("fastllm, verify=signature", fl_params, {}, quality(n, fl_pairs, truth)))
    e2e_secs, _ = best_of(lambda: dedup.near_duplicate_clusters(texts, DedupConfig(threshold=a.threshold)), a.repeat)
    raw = {tuple(x) for x in dedup.near_duplicate_pairs(sigs, a.threshold, verify=False).tolist()}
    rows.append(
        (
            "fastllm, no verify",
            dedup.lsh_params(a.threshold, a.num_perm),
            {},
            quality(n, raw, truth),
        )
    )
    if not a.skip_peers:
        ds_secs, ds_pairs, ds_params = run_datasketch(texts, a)
        rows.append(("datasketch MinHashLSH", ds_params, ds_secs, quality(n, ds_pairs, truth)))
        bands = 16  # rensa needs num_perm % num_bands == 0; its README uses 16 for 128
        rn_secs, rn_bulk, rn_pairs = run_rensa(texts, a, bands)
        rows.append(
            (
                "rensa RMinHash.update",
                (bands, a.num_perm // bands),
                rn_secs,
                quality(n, rn_pairs, truth),
            )
        )
        rows.append(("rensa digest_matrix (bulk)", None, rn_bulk, None))

    print()
    print(
        "| method | bands x rows | MB/s 1 thread | MB/s 1 thread, CPU time | MB/s 2 threads "
        "| recall | precision | cluster recall | cluster precision |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, params, secs, q in rows:
        bx = f"{params[0]} x {params[1]}" if params else ""
        s1 = f"{mb / secs[1]:.1f}" if 1 in secs else ""
        s2 = f"{mb / secs[2]:.1f}" if 2 in secs else ""
        sc = f"{mb / secs['cpu']:.1f}" if "cpu" in secs else ""
        qs = " | ".join(f"{x:.3f}" for x in q) if q else " |  |  | "
        print(f"| {name} | {bx} | {s1} | {sc} | {s2} | {qs} |")
    if not a.skip_peers:
        print()
        print(
            f"text -> signatures, 1 thread, fastllm vs rensa: "
            f"{rn_secs[1] / fl_secs[1]:.1f}x (RMinHash.update), "
            f"{rn_bulk[1] / fl_secs[1]:.1f}x (bulk digest_matrix); by CPU time "
            f"{rn_secs['cpu'] / fl_secs['cpu']:.1f}x and {rn_bulk['cpu'] / fl_secs['cpu']:.1f}x; "
            f"vs datasketch {ds_secs[1] / fl_secs[1]:.1f}x; fastllm 2 threads / 1 thread "
            f"{fl_secs[1] / fl_secs[2]:.2f}x"
        )
    print(
        f"exact verification of {len(cand)} candidate pairs (LSH + shingle Jaccard), 1 thread: "
        f"{exact_secs:.2f} s ({mb / (fl_secs[1] + exact_secs):.1f} MB/s with the signatures); "
        f"near_duplicate_clusters(texts) end to end, 1 thread: {mb / e2e_secs:.1f} MB/s"
    )

    fastllm.set_num_threads(1)
    big = texts * max(1, int(200 / mb))
    big_mb = mb * (len(big) // len(texts))
    for norm in (False, True):
        secs, _ = best_of(lambda n=norm: dedup.content_hashes(big, normalize=n), a.repeat)
        print(
            f"exact dedup, content_hashes(normalize={norm}), 1 thread: {big_mb / secs:.0f} MB/s "
            f"(CPU time: {big_mb / LAST_CPU[0]:.0f} MB/s)"
        )
    secs, _ = best_of(lambda: dedup.exact_duplicates(big), a.repeat)
    print(f"exact dedup, exact_duplicates (normalize=True), 1 thread: {big_mb / secs:.0f} MB/s")
    for kind, docs in texts_by_kind().items():
        kmb = sum(len(t.encode("utf-8")) for t in docs) / 1e6
        speeds = []
        for norm in (False, True):
            secs, _ = best_of(lambda n=norm, d=docs: dedup.content_hashes(d, normalize=n), a.repeat)
            speeds.append(f"{kmb / secs:.0f} MB/s (CPU time: {kmb / LAST_CPU[0]:.0f})")
        print(
            f"exact dedup on {kind} ({len(docs)} docs, {kmb:.1f} MB), 1 thread: "
            f"normalize=False {speeds[0]}, normalize=True {speeds[1]}"
        )
    fastllm.set_num_threads(before)
    print(
        f"load average {os.getloadavg()[0]:.1f} at end (the machine is shared: MB/s are wall time)"
    )


if __name__ == "__main__":
    main()
