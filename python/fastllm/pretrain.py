"""``python -m fastllm.pretrain``: raw text to a trained model, on one machine.

With no arguments it runs the embedded default, which needs no download:

1. corpus    the Python standard library's own sources (code, comments,
             docstrings) found beside this interpreter, exact- and
             near-duplicates removed;
2. tokenizer a byte-level BPE trained on that corpus (``tokenizer.json``);
3. shards    Megatron-compatible token shards, train and validation;
4. train     the ``tiny`` Llama-style model for a few minutes on CPU;
5. report    validation loss, samples, and a summary (``report.json``).

Every stage writes its output atomically under ``--out`` (default
``runs/pretrain``), and a rerun reuses finished stages (training resumes
from its last checkpoint). With ``--config CONFIG.toml`` it trains on the
shards that config names (``[data] shards = ...``) instead. Any knob can be
overridden with dotted flags, e.g. ``--train.steps 600 --optim.name muon``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastllm.io.atomic import write_text_atomic

# The embedded default: the tiny model, a 4k BPE, a few minutes on 2 CPU cores.
DEFAULT_RUN: dict[str, dict[str, Any]] = {
    "model": {"size": "tiny", "max_seq_len": 256},
    "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
    "schedule": {"name": "cosine", "warmup_steps": 30, "min_ratio": 0.1},
    "train": {
        "steps": 400, "batch": 16, "seq": 256, "dtype": "fp32", "eval_every": 100,
        "eval_batches": 8, "log_every": 20, "ckpt_every": 100, "seed": 0,
    },
}  # fmt: skip
CORPUS_BYTES = 12_000_000
VOCAB_SIZE = 4096
VAL_EVERY = 40  # every 40th document is held out for validation
EOT = "<|endoftext|>"


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    reused: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def stdlib_documents(limit_bytes: int | None = None) -> list[tuple[str, str]]:
    """(path, text) of the standard library's .py files, in a fixed order, up
    to ``limit_bytes`` (default CORPUS_BYTES) of text. Test suites and
    vendored copies are skipped."""
    limit_bytes = CORPUS_BYTES if limit_bytes is None else limit_bytes
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("test/", "idlelib/idle_test/", "site-packages/")) or "/tests/" in rel:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a file that is not UTF-8 text is not part of the corpus
        if not text.strip():
            continue
        docs.append((rel, text))
        total += len(text.encode())
        if total >= limit_bytes:
            break
    if not docs:
        raise RuntimeError(f"no Python sources found under {root}")
    return docs


def build_corpus(out: Path) -> Stage:
    """Collect, deduplicate and split the embedded corpus into train/val JSONL."""
    from fastllm.data import dedup

    stage = Stage("corpus")
    train_path, val_path = out / "corpus" / "train.jsonl", out / "corpus" / "val.jsonl"
    if train_path.exists() and val_path.exists():
        stage.reused = True
        stage.info = json.loads((out / "corpus" / "stats.json").read_text())
        return stage
    t0 = time.perf_counter()
    docs = stdlib_documents()
    texts = [t for _, t in docs]
    first_exact = dedup.exact_duplicates(texts)
    near = dedup.near_duplicate_clusters(texts, threshold=0.8)
    keep = [i for i in range(len(docs)) if first_exact[i] == i and near[i] == i]
    train = [docs[i] for k, i in enumerate(keep) if k % VAL_EVERY != VAL_EVERY - 1]
    val = [docs[i] for k, i in enumerate(keep) if k % VAL_EVERY == VAL_EVERY - 1]
    for path, part in ((train_path, train), (val_path, val)):
        write_text_atomic(path, "".join(json.dumps({"id": p, "text": t}) + "\n" for p, t in part))
    stage.info = {
        "documents": len(docs),
        "bytes": sum(len(t.encode()) for t in texts),
        "exact_duplicates": int(sum(first_exact[i] != i for i in range(len(docs)))),
        "near_duplicates": int(sum(near[i] != i and first_exact[i] == i for i in range(len(docs)))),
        "train_documents": len(train),
        "val_documents": len(val),
    }
    write_text_atomic(out / "corpus" / "stats.json", json.dumps(stage.info, indent=2))
    stage.seconds = time.perf_counter() - t0
    return stage


def build_tokenizer(out: Path):
    from fastllm.tokenizer import Tokenizer

    stage = Stage("tokenizer")
    path = out / "tokenizer.json"
    t0 = time.perf_counter()
    if path.exists():
        tok = Tokenizer.from_file(path)
        stage.reused = True
    else:
        tok = Tokenizer.train(
            [out / "corpus" / "train.jsonl"], VOCAB_SIZE, special_tokens=(EOT,)
        )
        tok.save(path)
    stage.seconds = time.perf_counter() - t0
    stage.info = {"vocab_size": tok.vocab_size, "path": str(path)}
    return stage, tok


def build_shards(out: Path, tok) -> Stage:
    from fastllm.io.sources import iter_texts
    from fastllm.shards import ShardWriter, verify

    stage = Stage("shards")
    t0 = time.perf_counter()
    for split in ("train", "val"):
        shard_dir = out / "shards" / split
        if (shard_dir / "manifest.json").exists():
            problems = verify(shard_dir)
            if not problems:
                stage.reused = True
                continue
            raise RuntimeError(f"{shard_dir} is corrupted: {problems[0]} (delete it to rebuild)")
        if shard_dir.exists():  # an unfinished attempt: start it again
            for leftover in shard_dir.iterdir():
                leftover.unlink()
        texts = list(iter_texts(out / "corpus" / f"{split}.jsonl"))
        with ShardWriter(shard_dir, tokenizer=tok) as writer:
            writer.add_texts(texts, source="stdlib")
        stage.reused = False
    manifests = {
        s: json.loads((out / "shards" / s / "manifest.json").read_text()) for s in ("train", "val")
    }
    stage.info = {s: {"documents": m["documents"], "tokens": m["tokens"]} for s, m in manifests.items()}
    stage.seconds = time.perf_counter() - t0
    return stage


def train(config, tokenizer_path: Path | None) -> tuple[Stage, Any]:
    from fastllm.train.loop import Trainer

    stage = Stage("train")
    t0 = time.perf_counter()
    data, val = config.data.build(config.model)
    trainer = Trainer(config, data, val, tokenizer_path=tokenizer_path)
    start = trainer.step
    records = trainer.fit()
    stage.reused = start >= config.train.steps
    final = trainer.evaluate() if val is not None else {}
    stage.seconds = time.perf_counter() - t0
    tokens_per_s = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    stage.info = {
        "steps": trainer.step,
        "parameters": trainer.model.num_params(),
        "final_train_loss": records[-1]["loss"] if records else None,
        **{k: round(v, 4) for k, v in final.items()},
        "tokens_per_s": round(sum(tokens_per_s) / len(tokens_per_s)) if tokens_per_s else None,
        "out_dir": str(trainer.out_dir),
    }
    return stage, trainer


def samples(trainer, tok, prompts=("def ", "class ", "import ")) -> list[str]:
    import torch

    from fastllm.model.generate import sample

    g = torch.Generator().manual_seed(0)
    model = trainer.model.eval()
    eot = tok.special_tokens.get(EOT)
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = sample(model, tok.encode(p), 60, temperature=0.8, top_k=40, generator=g, stop_id=eot)
            out.append(p + tok.decode([i for i in ids if i != eot]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        prog="python -m fastllm.pretrain", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--config", help="a run config TOML naming [data] shards (default: embedded)")
    ap.add_argument("--out", default="runs/pretrain", help="where every stage writes")
    args, overrides = ap.parse_known_args(argv)
    out = Path(args.out)

    from fastllm.config import apply_overrides
    from fastllm.train.config import TrainConfig

    stages: list[Stage] = []
    try:
        if args.config:
            config = TrainConfig.load(args.config, overrides)
            if not config.data.shards:
                raise ValueError(f"{args.config}: [data] shards is empty; name a shard set to train on")
            tok_path = Path(config.data.tokenizer) if config.data.tokenizer else None
            tok = None
            if tok_path is not None:
                from fastllm.tokenizer import Tokenizer

                tok = Tokenizer.from_file(tok_path)
        else:
            # The whole config is checked before any work starts.
            run = json.loads(json.dumps(DEFAULT_RUN))
            run["model"]["vocab_size"] = VOCAB_SIZE
            run["train"]["out_dir"] = str(out / "model")
            run["train"]["resume"] = True
            run["data"] = {
                "shards": str(out / "shards" / "train"),
                "val_shards": str(out / "shards" / "val"),
            }
            run = apply_overrides(run, overrides)
            config = TrainConfig.from_dict(run)
            stages.append(build_corpus(out))
            st, tok = build_tokenizer(out)
            stages.append(st)
            stages.append(build_shards(out, tok))
            tok_path = out / "tokenizer.json"
            if tok.vocab_size != config.model.vocab_size:
                run["model"]["vocab_size"] = tok.vocab_size
                config = TrainConfig.from_dict(run)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    st, trainer = train(config, tok_path)
    stages.append(st)
    texts = samples(trainer, tok) if tok is not None and trainer.dist.is_main else []

    if trainer.dist.is_main:
        report = {"stages": [s.__dict__ for s in stages], "samples": texts}
        write_text_atomic(out / "report.json", json.dumps(report, indent=2))
        print()
        print(f"{'stage':<10} {'time':>8}  {'':6} details")
        for s in stages:
            brief = ", ".join(f"{k}={v}" for k, v in s.info.items() if not isinstance(v, dict))
            nested = ", ".join(f"{k}: {v}" for k, v in s.info.items() if isinstance(v, dict))
            print(f"{s.name:<10} {s.seconds:7.1f}s  {'reused' if s.reused else '':6} {brief or nested}")
        for t in texts:
            print("\n--- sample ---\n" + t)
        print(f"\nreport: {out / 'report.json'}; model: {trainer.out_dir}")
    if trainer.dist.distributed:
        from fastllm.parallel.distributed import teardown

        teardown()
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
