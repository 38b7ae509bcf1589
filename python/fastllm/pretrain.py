"""``python -m fastllm.pretrain``: raw text to a trained model, on one machine.

With no arguments it runs the embedded default, which needs no download:

1. corpus    the Python standard library's own sources (code, comments,
             docstrings) found beside this interpreter (``corpus/stdlib.jsonl``);
2. pipeline  :func:`fastllm.data.pipeline.run` on it (``data/``): exact and
             near duplicates removed (the quality filters and PII masking are
             off: the corpus is code, not web prose), a 4k byte-level BPE
             trained in the run (``data/tokenizer.json``), Megatron shards with
             every 40th kept document held out for validation
             (``data/shards``, ``data/val_shards``, ``data/report.json``);
3. train     the ``tiny`` Llama-style model for a few minutes on CPU;
4. report    validation loss, samples, and a summary (``report.json``).

Every stage writes its output atomically under ``--out`` (default
``runs/pretrain``), and a rerun reuses finished stages (the pipeline's
finished output, training resumes from its last checkpoint). With
``--config CONFIG.toml`` it trains on the shards that config names
(``[data] shards = ...``) instead. Any knob can be overridden with dotted
flags at any depth, e.g. ``--train.steps 600 --optim.name muon
--pipeline.dedup.threshold 0.9``; ``--describe`` lists them all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastllm.config import ConfigError, Section, check, cli, knob, section
from fastllm.data.config import PipelineConfig
from fastllm.io.atomic import write_json_atomic
from fastllm.model.config import ModelConfig
from fastllm.optim.routing import OptimConfig
from fastllm.optim.schedule import ScheduleConfig
from fastllm.train.config import LoopConfig, TrainConfig

CORPUS_BYTES = 12_000_000
VOCAB_SIZE = 4096
VAL_EVERY = 40  # every 40th kept document is held out for validation
EOT = "<|endoftext|>"


@dataclass
class RunSection(Section):
    """Where the run writes (the ``[run]`` table)."""

    out: str = knob("runs/pretrain", "every stage writes here: corpus/, data/, model/, report.json")


@dataclass
class CorpusConfig(Section):
    """The embedded corpus (the ``[corpus]`` table)."""

    max_bytes: int = knob(CORPUS_BYTES, "bytes of standard-library sources to take (whole files)")

    def validate(self) -> None:
        check(self.max_bytes >= 1, "max_bytes", f"must be >= 1, got {self.max_bytes}")


@dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    """``--config FILE``: a run config (``python -m fastllm.train``'s tables
    and defaults) whose ``[data] shards`` are trained on, plus ``[run]``."""

    run: RunSection = section(RunSection)

    def training(self, **model_changes: Any) -> TrainConfig:
        """The training part, as ``python -m fastllm.train`` takes it (checked)."""
        return TrainConfig(
            model=self.model.replace(**model_changes) if model_changes else self.model,
            optim=self.optim,
            schedule=self.schedule,
            train=self.train,
            data=self.data,
        )


def _default(factory: Any, doc: str = "") -> Any:
    # Called when a config is made, so the module constants can be changed first.
    return field(default_factory=factory, metadata={"doc": doc})


@dataclass(frozen=True)
class EmbeddedConfig(PretrainConfig):
    """The embedded run (no ``--config``): the tiny model, a 4k BPE, a few
    minutes on 2 CPU cores. Paths left empty (``pipeline.input.paths``,
    ``pipeline.output.dir``, ``train.out_dir``, ``data.shards``,
    ``data.val_shards``) are placed under ``run.out``."""

    model: ModelConfig = _default(
        lambda: ModelConfig.named("tiny", max_seq_len=256, vocab_size=VOCAB_SIZE)
    )
    optim: OptimConfig = _default(
        lambda: OptimConfig.from_dict({"name": "adamw", "lr": 3e-3, "weight_decay": 0.1})
    )
    schedule: ScheduleConfig = _default(
        lambda: ScheduleConfig.from_dict({"name": "cosine", "warmup_steps": 30, "min_ratio": 0.1})
    )
    train: LoopConfig = _default(
        lambda: LoopConfig.from_dict(
            {
                "steps": 400,
                "batch": 16,
                "seq": 256,
                "dtype": "fp32",
                "eval_every": 100,
                "eval_batches": 8,
                "log_every": 20,
                "ckpt_every": 100,
                "seed": 0,
                "resume": True,
                "out_dir": "",
            }
        )
    )
    corpus: CorpusConfig = _default(lambda: CorpusConfig(max_bytes=CORPUS_BYTES))
    pipeline: PipelineConfig = _default(
        lambda: PipelineConfig.from_dict(
            {
                "filter": {"enabled": False},  # code, not web prose
                "pii": {"enabled": False},
                "tokenizer": {"train_vocab_size": VOCAB_SIZE, "train_sample_docs": 1_000_000},
                "output": {"val_every": VAL_EVERY},
            }
        ),
        "the data pipeline (python -m fastllm.data run): dedup, BPE, shards",
    )


def placed(cfg: EmbeddedConfig) -> EmbeddedConfig:
    """``cfg`` with its empty paths placed under ``run.out``."""
    out = Path(cfg.run.out)
    data = out / "data"
    p = cfg.pipeline
    pipeline = p.replace(
        input=p.input
        if p.input.paths
        else p.input.replace(paths=[str(out / "corpus" / "stdlib.jsonl")]),
        output=p.output if p.output.dir else p.output.replace(dir=str(data)),
    )
    pdir = Path(pipeline.output.dir)
    return cfg.replace(
        pipeline=pipeline,
        train=cfg.train if cfg.train.out_dir else cfg.train.replace(out_dir=str(out / "model")),
        data=cfg.data.replace(
            shards=cfg.data.shards or str(pdir / "shards"),
            val_shards=cfg.data.val_shards
            or (str(pdir / "val_shards") if pipeline.output.val_every else ""),
        ),
    )


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    reused: bool = False
    info: dict[str, Any] = field(default_factory=dict)


# ---- 1. corpus ---------------------------------------------------------------------
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


def build_corpus(cfg: EmbeddedConfig) -> Stage:
    """The embedded corpus as the pipeline's input: one JSONL line per file."""
    from fastllm.io.atomic import write_text_atomic

    stage = Stage("corpus")
    corpus = Path(cfg.pipeline.input.paths[0])
    stats = corpus.with_name("stats.json")
    if corpus.is_file() and stats.is_file():
        stage.reused = True
        stage.info = json.loads(stats.read_text())
        return stage
    t0 = time.perf_counter()
    docs = stdlib_documents(cfg.corpus.max_bytes)
    write_text_atomic(corpus, "".join(json.dumps({"id": p, "text": t}) + "\n" for p, t in docs))
    stage.info = {"documents": len(docs), "bytes": sum(len(t.encode()) for _, t in docs)}
    write_json_atomic(stats, stage.info)  # last: marks the corpus finished
    stage.seconds = time.perf_counter() - t0
    return stage


# ---- 2. the data pipeline ----------------------------------------------------------
def run_pipeline(cfg: PipelineConfig) -> tuple[Stage, Path]:
    """:func:`fastllm.data.pipeline.run`; returns the stage and the tokenizer's path."""
    from fastllm.data.pipeline import run

    stage = Stage("pipeline")
    t0 = time.perf_counter()
    report = run(cfg)
    stage.reused = bool(report.get("finished_before"))
    dedup, totals = report["stages"]["dedup"], report["totals"]
    tok_path = Path(cfg.tokenizer.path or Path(cfg.output.dir) / "tokenizer.json")
    from fastllm.tokenizer import Tokenizer

    stage.info = {
        "documents": report["stages"]["read"]["docs_out"],
        "exact_duplicates": dedup["dropped"].get("exact_duplicate", 0),
        "near_duplicates": dedup["dropped"].get("near_duplicate", 0),
        "train_documents": totals["documents"],
        "val_documents": totals.get("val_documents", 0),
        "vocab_size": Tokenizer.from_file(tok_path).vocab_size,
        "train_tokens": totals["tokens"],
        "val_tokens": totals.get("val_tokens", 0),
        "report": str(Path(cfg.output.dir) / "report.json"),
    }
    stage.seconds = time.perf_counter() - t0
    return stage, tok_path


# ---- 3. training -----------------------------------------------------------------------
def train(config: TrainConfig, tokenizer_path: Path | None) -> tuple[Stage, Any]:
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
            ids = sample(
                model, tok.encode(p), 60, temperature=0.8, top_k=40, generator=g, stop_id=eot
            )
            out.append(p + tok.decode([i for i in ids if i != eot]))
    return out


# ---- 4. the table of contents ----------------------------------------------------------
def configure(argv: list[str]) -> PretrainConfig | None:
    """The run's config (an :class:`EmbeddedConfig` unless ``--config`` is
    given), or None after ``--describe``. Everything is checked here, before
    any work."""
    embedded = not any(a == "--config" or a.startswith("--config=") for a in argv)
    cfg = cli(
        EmbeddedConfig if embedded else PretrainConfig,
        argv,
        prog="python -m fastllm.pretrain",
        description=__doc__.split("\n\n")[0],
        flags={"--out": ("run.out", "where every stage writes")},
    )
    if cfg is None:
        return None
    if isinstance(cfg, EmbeddedConfig):
        return placed(cfg)
    if not cfg.data.shards:
        raise ConfigError("data.shards", "[data] shards is empty; name a shard set to train on")
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        configured = configure(argv)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if configured is None:
        return 0
    cfg = configured
    config = cfg.training()
    out = Path(cfg.run.out)

    stages: list[Stage] = []
    tok_path = Path(config.data.tokenizer) if config.data.tokenizer else None
    if isinstance(cfg, EmbeddedConfig):
        stages.append(build_corpus(cfg))
        st, tok_path = run_pipeline(cfg.pipeline)
        stages.append(st)
        # The model's vocabulary is the tokenizer's.
        config = cfg.training(vocab_size=st.info["vocab_size"])
    tok = None
    if tok_path is not None:
        from fastllm.tokenizer import Tokenizer

        tok = Tokenizer.from_file(tok_path)

    st, trainer = train(config, tok_path)
    stages.append(st)
    texts = samples(trainer, tok) if tok is not None and trainer.dist.is_main else []

    if trainer.dist.is_main:
        report = {"stages": [dataclasses.asdict(s) for s in stages], "samples": texts}
        write_json_atomic(out / "report.json", report)
        print()
        print(f"{'stage':<10} {'time':>8}  {'':6} details")
        for s in stages:
            brief = ", ".join(f"{k}={v}" for k, v in s.info.items() if not isinstance(v, dict))
            print(f"{s.name:<10} {s.seconds:7.1f}s  {'reused' if s.reused else '':6} {brief}")
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
