"""Small configs and data for the loop tests (CPU, < 0.1M parameters, fp32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastllm.train import TokenStream, TrainConfig

MODEL = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)


def tokens(n: int = 4096, seed: int = 0, period: int = 31) -> torch.Tensor:
    """A learnable stream: a random block of ``period`` tokens repeated."""
    g = torch.Generator().manual_seed(seed)
    block = torch.randint(0, MODEL["vocab_size"], (period,), generator=g)
    return block.repeat(n // period + 1)[:n]


def config(out_dir: str | Path, **sections: dict[str, Any]) -> TrainConfig:
    """The test config; ``train={...}`` etc. override single fields."""
    base: dict[str, dict[str, Any]] = {
        "model": dict(MODEL),
        "optim": {"lr": 1e-2, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "warmup_steps": 2},
        "train": {
            "steps": 8,
            "batch": 4,
            "seq": 16,
            "dtype": "fp32",
            "eval_every": 0,
            "ckpt_every": 0,
            "log_every": 1,
            "progress": False,
            "tensorboard": False,
            "out_dir": str(out_dir),
        },
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return TrainConfig.from_dict(base)


def data(seed: int = 0, eos_id: int | None = None):
    """(train, validation) factories over :func:`tokens` (with ``eos_id``:
    documents end at that token, and batches carry their position ids)."""
    t = tokens(seed=seed)
    return (
        TokenStream.factory(t[:3500], eos_id=eos_id),
        TokenStream.factory(t[3500:], shuffle=False, eos_id=eos_id),
    )
