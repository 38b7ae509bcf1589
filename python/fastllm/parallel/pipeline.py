"""Pipeline parallelism: the decoder cut into stages over the mesh's ``pp``
dimension, run by a ``torch.distributed.pipelining`` schedule.

Each rank keeps its own stages of the full model *in place*: the blocks of
other stages are deleted, the embedding stays on the first stage and the
final norm and head on the last. Parameter names do not change
(``layers.5.attention.wq.weight`` stays itself), so checkpoints of a
pipelined run load into any other layout and back.

With ``v`` virtual stages per rank (``interleaved_1f1b``) the model is cut
into ``pp × v`` stages and rank ``r`` holds stages ``r, r + pp, r + 2·pp, …``
(Megatron's interleaved placement): the model object keeps the union of its
stages' blocks, and :func:`stage_chunks` gives one module per stage that
shares them.
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


def rank_stages(rank: int, ranks: int, virtual: int = 1) -> list[int]:
    """The stages pipeline rank ``rank`` runs: ``rank + i·ranks`` for each of
    its ``virtual`` stages."""
    return [rank + i * ranks for i in range(virtual)]


def keep_stage(model: nn.Module, stage: int, stages: int, virtual: int = 1) -> None:
    """Cut ``model`` (a Decoder) down to what pipeline rank ``stage`` of
    ``stages`` runs: its one stage, or with ``virtual`` > 1 its interleaved
    stages of ``stages × virtual``."""
    names = list(model.layers.keys())
    total = stages * virtual
    mine = rank_stages(stage, stages, virtual)
    split = stage_layers(len(names), total)
    keep = {names[i] for s in mine for i in split[s]}
    for name in names:
        if name not in keep:
            del model.layers[name]
    if 0 not in mine:
        model.tok_embeddings = None
    if total - 1 not in mine:
        model.norm = None
        model.output = None


def stage_chunks(
    model: nn.Module, rank: int, ranks: int, virtual: int, seq_shards: int = 1
) -> list[nn.Module]:
    """One module per stage of pipeline rank ``rank`` (after :func:`keep_stage`
    with the same arguments): Decoders that share ``model``'s blocks,
    embedding and head, so their parameters are ``model``'s under the same
    names. Under sequence parallelism a stage without the embedding takes
    sequence-sharded hidden states (``seq_shards`` as ``model``'s tensor
    parallelism splits it: ``seq_shards``)."""
    total = ranks * virtual
    split = stage_layers(model.config.n_layers, total)
    chunks = []
    for s in rank_stages(rank, ranks, virtual):
        chunk = type(model).__new__(type(model))
        nn.Module.__init__(chunk)
        for key, value in vars(model).items():
            if not key.startswith("_") and key != "training":
                setattr(chunk, key, value)
        chunk.tok_embeddings = model.tok_embeddings if s == 0 else None
        chunk.layers = nn.ModuleDict({str(i): model.layers[str(i)] for i in split[s]})
        chunk.norm = model.norm if s == total - 1 else None
        chunk.output = model.output if s == total - 1 else None
        for name, buf in model._buffers.items():
            chunk.register_buffer(name, buf, persistent=name not in model._non_persistent_buffers_set)
        chunk.seq_shards = 1 if s == 0 else seq_shards
        chunks.append(chunk)
    return chunks


class PipelineRunner:
    """One stage's schedule: ``step`` runs forward and backward of one batch
    split into micro-batches (the schedule owns backward); ``evaluate`` runs
    forward only. The loss is computed on the last stage by ``loss_fn(logits,
    labels)``, a *sum* that the caller scales."""

    def __init__(self, module: nn.Module, mesh: Any, config: Any, loss_fn: Any) -> None:
        from torch.distributed.pipelining import (
            PipelineStage,
            Schedule1F1B,
            ScheduleGPipe,
            ScheduleInterleaved1F1B,
        )

        p = config.parallel
        self.first = mesh.pp_rank == 0
        self.last = mesh.pp_rank == mesh.pp_size - 1
        # scale_grads=False: the loss is already divided by the step's global
        # target-token count; the schedule must not average it again.
        if p.pp_schedule == "interleaved_1f1b":
            chunks = list(module)  # parallelize's ModuleList: one module per local stage
            total = mesh.pp_size * len(chunks)
            self.stages = [
                PipelineStage(chunk, s, total, mesh.device, group=mesh.pp_group)
                for chunk, s in zip(
                    chunks, rank_stages(mesh.pp_rank, mesh.pp_size, len(chunks)), strict=True
                )
            ]
            self.schedule = ScheduleInterleaved1F1B(
                self.stages, p.microbatches, loss_fn=loss_fn, scale_grads=False
            )
            return
        self.stages = [
            PipelineStage(module, mesh.pp_rank, mesh.pp_size, mesh.device, group=mesh.pp_group)
        ]
        kind = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[p.pp_schedule]
        self.schedule = kind(self.stages[0], p.microbatches, loss_fn=loss_fn, scale_grads=False)

    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[tuple, dict, Any]:
        """(args, kwargs, target) of one schedule call: the tokens enter the
        first stage; ``position_ids`` (documents packed in a row) go to every
        stage as a keyword, since each stage's attention masks by them; the
        labels reach the last."""
        args = (batch["input_ids"],) if self.first else ()
        kwargs = {"position_ids": batch["position_ids"]} if "position_ids" in batch else {}
        return args, kwargs, batch["labels"] if self.last else None

    def step(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The micro-batches' losses (on the last stage; empty elsewhere)."""
        losses: list[torch.Tensor] = []
        args, kwargs, target = self._inputs(batch)
        self.schedule.step(*args, target=target, losses=losses, return_outputs=False, **kwargs)
        return losses

    def evaluate(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        losses: list[torch.Tensor] = []
        args, kwargs, target = self._inputs(batch)
        self.schedule.eval(*args, target=target, losses=losses, **kwargs)
        return losses
