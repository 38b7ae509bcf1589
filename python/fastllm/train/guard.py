"""The loss-spike guard: skip an update whose loss or gradient norm is non-finite
or an outlier, and count the skips.

An outlier is a loss above ``factor`` × the median of the last ``window``
accepted losses, or a gradient norm above ``norm_factor`` × their median
(norms swing more than losses in a healthy run, so their bar is higher), judged once ``min_history`` updates were accepted (a median of
fewer is noise). Skipped values never enter the history, so a run of spikes
cannot drag the median up. The history is part of the checkpoint: a resumed
run judges exactly as the uninterrupted one would.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any


class SpikeGuard:
    def __init__(
        self,
        factor: float = 3.0,
        window: int = 50,
        min_history: int = 10,
        norm_factor: float | None = None,
    ) -> None:
        self.factor, self.window, self.min_history = factor, window, min_history
        self.norm_factor = factor if norm_factor is None else norm_factor
        self.losses: deque[float] = deque(maxlen=window)
        self.norms: deque[float] = deque(maxlen=window)
        self.skips = 0
        self.reasons: dict[str, int] = {}

    def check(self, loss: float, grad_norm: float) -> str | None:
        """Why this update should be skipped, or None to take it."""
        if not math.isfinite(loss):
            return "nonfinite_loss"
        if not math.isfinite(grad_norm):
            return "nonfinite_grad_norm"
        if len(self.losses) >= self.min_history:
            if self.factor and loss > self.factor * statistics.median(self.losses):
                return "loss_spike"
            if self.norm_factor and grad_norm > self.norm_factor * statistics.median(self.norms):
                return "grad_norm_spike"
        return None

    def accept(self, loss: float, grad_norm: float) -> None:
        self.losses.append(loss)
        self.norms.append(grad_norm)

    def skip(self, reason: str) -> None:
        self.skips += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": list(self.losses),
            "norms": list(self.norms),
            "skips": self.skips,
            "reasons": dict(self.reasons),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = deque(state["losses"], maxlen=self.window)
        self.norms = deque(state["norms"], maxlen=self.window)
        self.skips = int(state["skips"])
        self.reasons = dict(state["reasons"])
