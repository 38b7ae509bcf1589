"""Tokenizer speed: fastllm vs tiktoken vs HF tokenizers, same texts, one run.

    python benches/python/bench_tokenizer.py [--mb 67] [--repeat 3]

Encodes the documents of ../shared/data/text (or $FASTLLM_SHARED_DATA/text)
with GPT-2 (HF tokenizer.json; tiktoken r50k_base), cl100k_base and
o200k_base, one thread and then the batch API on 1 and 2 threads, and prints
MB/s and fastllm's ratio to each peer. Checks the ids agree while at it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import fastllm
from fastllm import Tokenizer
from fastllm.tokenizer import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN


def shared_data() -> Path:
    env = os.environ.get("FASTLLM_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not (root / "text").is_dir():
        sys.exit(f"shared data not found at {root}; set FASTLLM_SHARED_DATA")
    return root


def load_docs(root: Path, mb: float) -> list[str]:
    docs, size = [], 0
    for f in sorted((root / "text").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                docs.append(json.loads(line)["text"])
    # Interleave sources so a prefix is a fair sample, then cut at `mb`.
    docs = docs[::2] + docs[1::2]
    out = []
    for d in docs:
        if size >= mb * 1e6:
            break
        out.append(d)
        size += len(d.encode())
    return out


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=67.0, help="MB of text to encode")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = ap.parse_args()

    import tiktoken
    import tokenizers
    from tiktoken.load import load_tiktoken_bpe

    root = shared_data()
    docs = load_docs(root, args.mb)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    tk = root / "tokenizers"

    encodings = {}
    hf_gpt2 = tokenizers.Tokenizer.from_file(str(tk / "gpt2" / "tokenizer.json"))
    encodings["gpt2"] = (
        Tokenizer.from_file(tk / "gpt2" / "tokenizer.json"),
        tiktoken.Encoding("r50k_base", pat_str=GPT2_PATTERN,
                          mergeable_ranks=load_tiktoken_bpe(str(tk / "tiktoken" / "r50k_base.tiktoken")),
                          special_tokens={"<|endoftext|>": 50256}),
        hf_gpt2,
    )
    for name, pat in [("cl100k_base", GPT4_PATTERN), ("o200k_base", O200K_PATTERN)]:
        path = tk / "tiktoken" / f"{name}.tiktoken"
        encodings[name] = (
            Tokenizer.from_tiktoken(path, pat),
            tiktoken.Encoding(name, pat_str=pat, mergeable_ranks=load_tiktoken_bpe(str(path)),
                              special_tokens={}),
            None,
        )

    print(f"# fastllm {fastllm.__version__}, tiktoken {tiktoken.__version__}, "
          f"tokenizers {tokenizers.__version__}, Python {platform.python_version()}")
    print(f"# {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; "
          f"{len(docs)} docs, {mb:.1f} MB; best of {args.repeat}")
    print(f"# command: {' '.join(sys.argv)}")
    print()
    header = f"{'encoding':<12} {'mode':<22} {'fastllm MB/s':>12} {'tiktoken MB/s':>13} " \
             f"{'HF MB/s':>8} {'vs tiktoken':>11} {'vs HF':>7}"
    print(header)
    print("-" * len(header))
    for name, (ours, tik, hf) in encodings.items():
        fastllm.set_num_threads(1)
        # Correctness spot check on the whole set (one pass each).
        assert ours.encode_batch(docs, disallowed_special=()) == tik.encode_ordinary_batch(docs)

        t_ours = best_of(args.repeat, lambda o=ours: [o.encode_ordinary(d) for d in docs])
        t_tik = best_of(args.repeat, lambda t=tik: [t.encode_ordinary(d) for d in docs])
        t_hf = best_of(1, lambda h=hf: [h.encode(d) for d in docs]) if hf is not None else None
        row(name, "1 thread, per doc", mb, t_ours, t_tik, t_hf)

        for threads in (1, 2):
            fastllm.set_num_threads(threads)
            t_ours = best_of(
                args.repeat, lambda o=ours: o.encode_batch(docs, disallowed_special=())
            )
            t_tik = best_of(
                args.repeat,
                lambda t=tik, n=threads: t.encode_ordinary_batch(docs, num_threads=n),
            )
            row(name, f"batch, {threads} thread{'s' * (threads > 1)}", mb, t_ours, t_tik, None)
    fastllm.set_num_threads(os.cpu_count() or 1)


def row(name, mode, mb, t_ours, t_tik, t_hf):
    hf_col = f"{mb / t_hf:8.1f}" if t_hf else f"{'-':>8}"
    vs_hf = f"{t_hf / t_ours:6.2f}x" if t_hf else f"{'-':>7}"
    print(f"{name:<12} {mode:<22} {mb / t_ours:12.1f} {mb / t_tik:13.1f} {hf_col} "
          f"{t_tik / t_ours:10.2f}x {vs_hf}", flush=True)


if __name__ == "__main__":
    main()
