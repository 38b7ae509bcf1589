"""BPE training speed: fastllm vs HF tokenizers, rustbpe and bpeasy.

All trainers run in this one process on the same text (about 8 MB, documents
taken round-robin from every file of ../shared/data/text) to the same vocab
size, with the same split pattern: GPT-4's (cl100k) with ``\\p{N}{1,3}`` in
place of the possessive ``\\p{N}{1,3}+``, which Oniguruma (HF) reads as
``(\\p{N}{1,3})+``. Differences between peers are printed beside the table.

    python benches/python/bench_train.py [--mb 8] [--vocab 16000] [--repeat 3]
        [--files 'gutenberg-en-*'] [--only fastllm rustbpe]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
)


def shared_text() -> Path:
    env = os.environ.get("FASTLLM_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root / "text"


def load_texts(mb: float, files: str = "*.jsonl.gz") -> list[str]:
    """Documents round-robin across the files until `mb` MB of UTF-8."""
    per_file = []
    for path in sorted(shared_text().glob(files)):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            per_file.append([json.loads(line)["text"] for line in f])
    texts, size, i = [], 0, 0
    while size < mb * 1e6 and any(i < len(d) for d in per_file):
        for docs in per_file:
            if i < len(docs) and size < mb * 1e6:
                texts.append(docs[i])
                size += len(docs[i].encode())
        i += 1
    return texts


def run_fastllm(texts, vocab):
    from fastllm import _core

    t = _core.BpeTrainer(PATTERN, vocab, 0, [])
    for i in range(0, len(texts), 256):
        t.feed(texts[i : i + 256])
    merges, _ = t.finish()
    return len(merges)


def run_hf(texts, vocab):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=0,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok.get_vocab_size() - 256


def run_rustbpe(texts, vocab):
    import rustbpe

    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(texts), vocab_size=vocab, pattern=PATTERN)
    return tok.vocab_size - 256


def run_bpeasy(texts, vocab):
    import bpeasy

    v = bpeasy.train_bpe(iter(texts), PATTERN, 128, vocab)
    return len(v) - 256


PEERS = {
    "fastllm": (run_fastllm, "fastllm"),
    "hf tokenizers": (run_hf, "tokenizers"),
    "rustbpe": (run_rustbpe, "rustbpe"),
    "bpeasy": (run_bpeasy, "bpeasy"),
}

NOTES = {
    "bpeasy": "max_token_length=128 (bpeasy requires one); its own tie-breaking",
    "rustbpe": "no special tokens or min_frequency; its own tie-breaking",
}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def version(mod: str) -> str:
    try:
        from importlib.metadata import version as v

        return v(mod if mod != "fastllm" else "fastllm")
    except Exception:
        try:
            return __import__(mod).__version__
        except Exception:
            return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--vocab", type=int, default=16000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=list(PEERS))
    ap.add_argument("--files", default="*.jsonl.gz", help="glob in shared/data/text")
    args = ap.parse_args()

    texts = load_texts(args.mb, args.files)
    nbytes = sum(len(t.encode()) for t in texts)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} "
        f"python={platform.python_version()} {platform.platform()}"
    )
    print(
        f"text: {len(texts)} docs from {args.files}, {nbytes / 1e6:.2f} MB; "
        f"vocab {args.vocab}; best of {args.repeat}"
    )
    print()

    rows = []
    for name in args.only:
        fn, mod = PEERS[name]
        try:
            __import__(mod)
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        times, cpus, merges = [], [], None
        for _ in range(args.repeat):
            c0, t0 = cpu_seconds(), time.perf_counter()
            merges = fn(texts, args.vocab)
            times.append(time.perf_counter() - t0)
            cpus.append(cpu_seconds() - c0)
        rows.append((name, version(mod), min(times), statistics.median(times), min(cpus), merges))

    base = next((r[2] for r in rows if r[0] == "fastllm"), None)
    print(
        f"{'trainer':<14} {'version':<10} {'best s':>8} {'median s':>9} {'cpu s':>7} "
        f"{'new tokens':>11} {'vs fastllm':>11}"
    )
    for name, ver, best, med, cpu, merges in rows:
        ratio = f"{best / base:.2f}x" if base else "-"
        print(f"{name:<14} {ver:<10} {best:>8.3f} {med:>9.3f} {cpu:>7.2f} {merges:>11} {ratio:>11}")
    print()
    for name, note in NOTES.items():
        if any(r[0] == name for r in rows):
            print(f"note: {name}: {note}")
    print("note: ratio = peer best s / fastllm best s (higher: fastllm faster)")
    print("note: cpu s = process CPU time (all threads) of the best-CPU run")
    print(f"note: load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
