"""Pipeline parallelism: the decoder cut into stages, one per rank of the
mesh's ``pp`` dimension, run by a ``torch.distributed.pipelining`` schedule.

Each rank keeps its own stage of the full model *in place*: the blocks of
other stages are deleted, the embedding stays on the first stage and the
final norm and head on the last. Parameter names do not change
(``layers.5.attention.wq.weight`` stays itself), so checkpoints of a
pipelined run load into any other layout and back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def stage_layers(n_layers: int, stages: int) -> list[list[int]]:
    """Contiguous blocks per stage, as even as can be; the extra blocks of an
    uneven split go to the middle stages (the first holds the embedding, the
    last the head)."""
    if stages > n_layers:
        raise ValueError(f"{stages} pipeline stages for {n_layers} layers")
    base, extra = divmod(n_layers, stages)
    by_centre = sorted(range(stages), key=lambda s: (abs(s - (stages - 1) / 2), s))
    sizes = [base + (1 if s in by_centre[:extra] else 0) for s in range(stages)]
    out, start = [], 0
    for size in sizes:
        out.append(list(range(start, start + size)))
        start += size
    return out


def keep_stage(model: nn.Module, stage: int, stages: int) -> None:
    """Cut ``model`` (a Decoder) down to pipeline stage ``stage`` of ``stages``."""
    names = list(model.layers.keys())
    keep = {names[i] for i in stage_layers(len(names), stages)[stage]}
    for name in names:
        if name not in keep:
            del model.layers[name]
    if stage > 0:
        model.tok_embeddings = None
    if stage < stages - 1:
        model.norm = None
        model.output = None


class PipelineRunner:
    """One stage's schedule: ``step`` runs forward and backward of one batch
    split into micro-batches (the schedule owns backward); ``evaluate`` runs
    forward only. The loss is computed on the last stage by ``loss_fn(logits,
    labels)``, a *sum* that the caller scales."""

    def __init__(self, module: nn.Module, mesh: Any, config: Any, loss_fn: Any) -> None:
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        p = config.parallel
        self.first = mesh.pp_rank == 0
        self.last = mesh.pp_rank == mesh.pp_size - 1
        self.stage = PipelineStage(
            module, mesh.pp_rank, mesh.pp_size, mesh.device, group=mesh.pp_group
        )
        kind = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[p.pp_schedule]
        # scale_grads=False: the loss is already divided by the step's global
        # target-token count; the schedule must not average it again.
        self.schedule = kind(self.stage, p.microbatches, loss_fn=loss_fn, scale_grads=False)

    def step(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The micro-batches' losses (on the last stage; empty elsewhere)."""
        losses: list[torch.Tensor] = []
        args = (batch["input_ids"],) if self.first else ()
        target = batch["labels"] if self.last else None
        self.schedule.step(*args, target=target, losses=losses, return_outputs=False)
        return losses

    def evaluate(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        losses: list[torch.Tensor] = []
        args = (batch["input_ids"],) if self.first else ()
        target = batch["labels"] if self.last else None
        self.schedule.eval(*args, target=target, losses=losses)
        return losses
