"""Learning-rate schedules as multipliers of the base learning rate.

Each schedule is a small picklable callable ``step -> factor`` for
``torch.optim.lr_scheduler.LambdaLR`` (which scales every param group's own
base lr, so Muon's and AdamW's rates move together). Being dataclasses, they
are saved in the scheduler's ``state_dict`` and restored with it.

- ``WarmupCosine``: linear warmup to 1, cosine decay to ``min_ratio`` at ``total_steps``.
- ``WarmupLinear``: linear warmup to 1, linear decay to ``min_ratio``.
- ``WarmupStableDecay`` (WSD, MiniCPM): warmup, a long constant phase, then a
  short decay (the annealing phase) over the last ``decay_frac`` of the steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from fastllm.config import Section, knob


def _warmup(step: int, warmup_steps: int) -> float:
    # (step + 1) / warmup: the first step already trains (a zero lr wastes it).
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def _decayed(step: int, start: int, total_steps: int, shape: str, min_ratio: float) -> float:
    """The lr ratio ``step`` is into a decay from 1 at ``start`` to ``min_ratio``
    at ``total_steps`` (flat after): linear, cosine or sqrt (1 - sqrt(t))."""
    t = min(1.0, (step - start) / max(1, total_steps - start))
    if shape == "linear":
        d = 1 - t
    elif shape == "cosine":
        d = 0.5 * (1 + math.cos(math.pi * t))
    else:
        d = 1 - math.sqrt(t)
    return min_ratio + (1 - min_ratio) * d


def _check(total_steps: int, warmup_steps: int, min_ratio: float) -> None:
    if total_steps < 1:
        raise ValueError(f"schedule.total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"schedule.warmup_steps must be in [0, total_steps], got {warmup_steps}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"schedule.min_ratio must be in [0, 1], got {min_ratio}")


@dataclass
class WarmupCosine:
    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.1

    def __post_init__(self) -> None:
        _check(self.total_steps, self.warmup_steps, self.min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        return _decayed(step, self.warmup_steps, self.total_steps, "cosine", self.min_ratio)


@dataclass
class WarmupLinear:
    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check(self.total_steps, self.warmup_steps, self.min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        return _decayed(step, self.warmup_steps, self.total_steps, "linear", self.min_ratio)


@dataclass
class WarmupStableDecay:
    total_steps: int
    warmup_steps: int = 0
    decay_frac: float = 0.2
    min_ratio: float = 0.0
    decay_shape: str = "linear"  # linear | cosine | sqrt (1 - sqrt(t), as in Hägele et al. 2024)

    def __post_init__(self) -> None:
        _check(self.total_steps, self.warmup_steps, self.min_ratio)
        if not 0.0 <= self.decay_frac <= 1.0:
            raise ValueError(f"schedule.decay_frac must be in [0, 1], got {self.decay_frac}")
        if self.decay_shape not in ("linear", "cosine", "sqrt"):
            raise ValueError(
                f"schedule.decay_shape must be linear, cosine or sqrt, got {self.decay_shape!r}"
            )
        if self.warmup_steps > self.decay_start:
            raise ValueError(
                f"schedule.warmup_steps={self.warmup_steps} overlaps the decay phase starting at step {self.decay_start}"
            )

    @property
    def decay_start(self) -> int:
        """The first step of the decay (annealing) phase."""
        return self.total_steps - round(self.decay_frac * self.total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        if step < self.decay_start:
            return 1.0
        return _decayed(
            step, self.decay_start, self.total_steps, self.decay_shape, self.min_ratio
        )


@dataclass(frozen=True)
class ScheduleConfig(Section):
    """The learning-rate schedule of a run (the ``[schedule]`` table)."""

    table = "schedule"

    name: Literal["cosine", "linear", "wsd", "constant"] = knob(
        "cosine", "cosine, linear, wsd, or constant"
    )
    warmup_steps: int = knob(0, "linear warmup steps")
    min_ratio: float = knob(0.1, "final lr as a fraction of the peak")
    decay_frac: float = knob(0.2, "wsd: fraction of the steps spent decaying")
    decay_shape: Literal["linear", "cosine", "sqrt"] = knob(
        "linear", "wsd: linear, cosine or sqrt decay"
    )

    def build(self, optimizer: torch.optim.Optimizer, total_steps: int):  # type: ignore[override]
        """A ``LambdaLR`` over ``optimizer`` for a run of ``total_steps``."""
        return build_scheduler(optimizer, self, total_steps)

    def factor(self, total_steps: int):
        """The ``step -> factor`` callable for a run of ``total_steps``."""
        if self.name == "cosine":
            return WarmupCosine(total_steps, self.warmup_steps, self.min_ratio)
        if self.name == "linear":
            return WarmupLinear(total_steps, self.warmup_steps, self.min_ratio)
        if self.name == "wsd":
            return WarmupStableDecay(
                total_steps, self.warmup_steps, self.decay_frac, self.min_ratio, self.decay_shape
            )
        return WarmupStableDecay(total_steps, self.warmup_steps, decay_frac=0.0)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying the schedule to every param group."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, config.factor(total_steps))
