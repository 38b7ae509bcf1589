"""The engine: backward and the optimizer step behind one object.

The loop never calls ``loss.backward()`` or ``optimizer.step()`` itself; it
asks the engine, so that a wrapper that owns both (a DeepSpeed engine, a
pipeline schedule) can take the engine's place. This one is plain PyTorch:
the gradient scaler (fp16), gradient clipping over the model's parameters,
the optimizer and the learning-rate schedule.

One optimizer step is::

    engine.zero_grad()
    for i, batch in enumerate(micro_batches):
        with engine.accumulate(sync=i == last):   # DDP reduces on the last only
            engine.backward(loss_of(engine.module, batch))
    norm = engine.clip_grad_norm(max_norm)
    engine.step(apply=norm_is_fine)              # or a skipped update
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from fastllm.parallel import clip_grad_norm, no_sync


class Engine:
    """``module`` is what forward runs on (the parallelized model); ``model`` is
    the bare model whose parameters the optimizer updates."""

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        *,
        fp16: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model = model
        self.module = module
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = torch.amp.GradScaler(torch.device(device).type, enabled=fp16)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def accumulate(self, sync: bool) -> contextlib.AbstractContextManager:
        """Around one micro-batch's forward and backward: gradients are
        reduced over data-parallel replicas only when ``sync``."""
        return no_sync(self.module, sync)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def clip_grad_norm(self, max_norm: float) -> float:
        """Unscale (fp16) and clip the global gradient norm (``max_norm <= 0``:
        no clipping); returns the norm before clipping."""
        self.scaler.unscale_(self.optimizer)
        return clip_grad_norm(self.model.parameters(), max_norm)

    def step(self, apply: bool = True) -> None:
        """The optimizer step (or, when not ``apply``, a skipped update: the
        gradients are dropped), then the loss scaler and the schedule advance."""
        if apply:
            self.scaler.step(self.optimizer)
        else:
            self.zero_grad()
        self.scaler.update()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    @property
    def loss_scale(self) -> float:
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def state_dict(self) -> dict[str, Any]:
        """The schedule and loss scaler (JSON-serializable); the optimizer and
        model go into the checkpoint's tensors."""
        return {"scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
