"""The engine: backward and the optimizer step behind one object.

The loop never calls ``loss.backward()`` or ``optimizer.step()`` itself; it
asks the engine, so that a wrapper that owns both (a DeepSpeed engine, a
pipeline schedule) can take the engine's place. This one is plain PyTorch:
the gradient scaler (fp16), gradient clipping over the model's parameters,
the optimizer and the learning-rate schedule.

One optimizer step is::

    engine.zero_grad()
    for i, batch in enumerate(micro_batches):   # DDP/FSDP reduce on the last only
        metrics = engine.micro_step(objective, batch, scale, sync=i == last)
    norm = engine.clip_grad_norm(max_norm)
    engine.step(apply=norm_is_fine)              # or a skipped update

:class:`PipelineEngine` is the same with a pipeline schedule owning forward
and backward; :class:`~fastllm.parallel.deepspeed.DeepSpeedEngine`, with a
DeepSpeed engine owning backward, clipping and the step. The engine also
writes and reads the checkpoint, since it knows where the optimizer's state
lives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastllm.parallel import (
    Mesh,
    ZeroOne,
    clip_grad_norm,
    local_value,
    loss_context,
    no_sync,
    reduce_partial_grads,
)
from fastllm.train import checkpoint as ckpt
from fastllm.train.objectives import IGNORE, Objective, token_loss_sums

Batch = dict[str, torch.Tensor]


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
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        mesh: Mesh | None = None,
        zero_one: ZeroOne | None = None,
        loss_parallel: bool = False,
    ) -> None:
        self.model = model
        self.loss_parallel = loss_parallel
        self.zero_one = zero_one
        self.module = module
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = torch.amp.GradScaler(torch.device(device).type, enabled=fp16)
        self.autocast = autocast
        self.mesh = mesh

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @contextlib.contextmanager
    def accumulate(self, sync: bool) -> Any:
        """Around one micro-batch's forward and backward: gradients are
        reduced over data-parallel replicas only when ``sync`` (under ZeRO-1:
        to each parameter's owner, after the backward)."""
        with no_sync(self.module, sync):
            yield
        if sync and self.zero_one is not None:
            self.zero_one.reduce_gradients()

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def micro_step(
        self, objective: Objective, batch: Batch, scale: float, sync: bool
    ) -> dict[str, torch.Tensor]:
        """Forward and backward of one micro-batch, its summed loss times
        ``scale``; returns the objective's summed metrics (unscaled)."""
        with self.accumulate(sync), loss_context(self.loss_parallel):
            with self.autocast():
                out = objective(self.module, batch)
            self.backward(out.loss * scale)
        return {k: local_value(v) for k, v in out.metrics.items()}

    def reduce_metrics(self, sums: torch.Tensor) -> torch.Tensor:
        """Metrics summed over whatever holds parts of them (pipeline stages)."""
        return sums

    @torch.no_grad()
    def eval_sums(self, batch: Batch) -> torch.Tensor:
        """[summed next-token loss, target tokens] of one validation batch."""
        with self.autocast(), loss_context(self.loss_parallel):
            logits = self.model(batch["input_ids"], position_ids=batch.get("position_ids"))
            ce = local_value(token_loss_sums(logits, batch["labels"])[0])
        return torch.stack([ce.double(), (batch["labels"] != IGNORE).sum().double()])

    def clip_grad_norm(self, max_norm: float) -> float:
        """Unscale (fp16) and clip the global gradient norm (``max_norm <= 0``:
        no clipping); returns the norm before clipping."""
        reduce_partial_grads(self.model.parameters())
        self.scaler.unscale_(self.optimizer)
        return clip_grad_norm(
            self.model.parameters(), max_norm, self.mesh, dp_partitioned=self.zero_one is not None
        )

    def step(self, apply: bool = True) -> None:
        """The optimizer step (or, when not ``apply``, a skipped update: the
        gradients are dropped), then the loss scaler and the schedule advance."""
        if apply:
            self.scaler.step(self.optimizer)
            if self.zero_one is not None:
                self.zero_one.broadcast_parameters()
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

    def save_checkpoint(
        self, root: str | Path, step: int, train_state: dict, rank_state: dict, **kwargs: Any
    ) -> Path:
        """The checkpoint of ``step`` under ``root`` (:func:`fastllm.train.checkpoint.save`)."""
        return ckpt.save(root, step, self.model, self.optimizer, train_state, rank_state, **kwargs)

    def load_checkpoint(self, path: str | Path, rank: int = 0) -> tuple[dict, dict]:
        """Model and optimizer loaded in place from ``path``; returns (train_state, rank_state)."""
        states = ckpt.load(path, self.model, self.optimizer, rank=rank)
        if self.zero_one is not None:  # the load filled in every parameter's state
            self.zero_one.drop_unowned_state(self.optimizer)
        return states


class PipelineEngine(Engine):
    """The engine of a pipeline stage: a ``torch.distributed.pipelining``
    schedule runs forward and backward of each micro-batch (split again into
    ``parallel.pp_microbatches``); the loss exists on the last stage only, and
    metrics are summed over the stages. Causal LM only (the schedule computes
    ``loss_fn(logits, labels)``)."""

    def __init__(self, *args: Any, config: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from fastllm.parallel.pipeline import PipelineRunner

        self._scale = 1.0

        def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return token_loss_sums(logits, labels)[0] * self._scale

        self.runner = PipelineRunner(self.module, self.mesh, config, loss_fn)

    def micro_step(
        self, objective: Objective, batch: Batch, scale: float, sync: bool
    ) -> dict[str, torch.Tensor]:
        self._scale = scale
        with self.accumulate(sync), self.autocast():
            losses = self.runner.step(batch)
        total = sum((x.detach().double() for x in losses), torch.zeros((), dtype=torch.float64))
        return {"loss": total / scale if losses else total}

    def reduce_metrics(self, sums: torch.Tensor) -> torch.Tensor:
        return self.mesh.all_reduce_pp(sums)

    @torch.no_grad()
    def eval_sums(self, batch: Batch) -> torch.Tensor:
        self._scale = 1.0
        with self.autocast():
            losses = self.runner.evaluate(batch)
        ce = sum((x.double() for x in losses), torch.zeros((), dtype=torch.float64))
        count = (batch["labels"] != IGNORE).sum().double()
        # Only the last stage has the loss; every stage has the count.
        ce = self.mesh.all_reduce_pp(ce.reshape(1).to(self.mesh.device))[0]
        return torch.stack([ce, count])
