"""Where the model gets wrapped: ``parallelize(model, config, mesh)``.

The order follows torchtitan's ``parallelize_llama``: the pipeline stage
kept (``pp``), tensor (and sequence)
parallelism on the ``tp`` sub-mesh, activation checkpointing on each block,
``torch.compile`` per block, then data parallelism — FSDP2 ``fully_shard`` per block
and then the root on the ``dp_shard`` (or, for HSDP, ``dp_replicate ×
dp_shard``) sub-mesh, or DDP when only ``dp_replicate`` is above 1 (none
under ``backend = "deepspeed"``: its engine wraps the model). The
Trainer only calls :func:`parallelize`, :func:`no_sync` and
:func:`clip_grad_norm`, and never unwraps what they return.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fastllm.parallel.mesh import Mesh
from fastllm.parallel.pipeline import keep_stage


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block in backward (``torch.utils.checkpoint``), applied from
    outside the model: the block's ``forward`` is wrapped on the instance, so
    parameter names and state dicts stay as they are."""
    for block in model.layers.values():
        inner = block.forward

        def forward(*args: Any, _inner: Callable = inner, **kwargs: Any) -> torch.Tensor:
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward


def apply_tensor_parallel(model: nn.Module, tp_mesh: Any, sequence_parallel: bool) -> None:
    """Megatron's split of each block over ``tp_mesh``: q/k/v and w1/w3
    column-wise (each rank a slice of the heads / hidden units), o and w2
    row-wise; the embedding row-wise and the head column-wise (both by
    vocabulary rows, so a tied weight stays one tensor). With sequence
    parallelism the norms and the residual stream hold a slice of the
    sequence, gathered before attention and the MLP."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        PrepareModuleInput,
        RowwiseParallel,
        SequenceParallel,
        parallelize_module,
    )

    stream = Shard(1) if sequence_parallel else Replicate()
    top: dict[str, Any] = {
        "tok_embeddings": RowwiseParallel(input_layouts=Replicate(), output_layouts=stream),
        "output": ColwiseParallel(input_layouts=stream, output_layouts=Replicate()),
    }
    if sequence_parallel:
        top["norm"] = SequenceParallel()
    tied = model.output is not None and model.output.weight is getattr(
        model.tok_embeddings, "weight", None
    )
    if sequence_parallel and model.tok_embeddings is None:
        model.seq_shards = tp_mesh.size()  # a later pipeline stage: its input is sharded
    parallelize_module(model, tp_mesh, top)
    if tied:
        # Both split the weight by vocabulary rows (Shard(0)): one DTensor can
        # serve both, as Megatron's vocab-parallel embedding and head share it.
        model.output.weight = model.tok_embeddings.weight
    for block in model.layers.values():
        plan: dict[str, Any] = {
            # attention(x, rope, mask, cache): only x is laid out; the rest pass as they are.
            "attention": PrepareModuleInput(
                input_layouts=(stream, None, None, None),
                desired_input_layouts=(Replicate(), None, None, None),
            ),
            "attention.wq": ColwiseParallel(),
            "attention.wk": ColwiseParallel(),
            "attention.wv": ColwiseParallel(),
            "attention.wo": RowwiseParallel(output_layouts=stream),
            "feed_forward": PrepareModuleInput(
                input_layouts=(stream,), desired_input_layouts=(Replicate(),)
            ),
            "feed_forward.w1": ColwiseParallel(),
            "feed_forward.w2": RowwiseParallel(output_layouts=stream),
            "feed_forward.w3": ColwiseParallel(),
        }
        if sequence_parallel:
            plan["attention_norm"] = SequenceParallel()
            plan["ffn_norm"] = SequenceParallel()
        parallelize_module(block, tp_mesh, plan)


def apply_fsdp(model: nn.Module, dp_mesh: Any, config: Any) -> None:
    """FSDP2: each block, then the root (embedding, final norm, head), sharded
    over ``dp_mesh`` (1-D: FSDP; 2-D replicate × shard: HSDP)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    p = config.parallel
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    kwargs: dict[str, Any] = {
        "mesh": dp_mesh,
        "reshard_after_forward": p.zero == 3,
        "mp_policy": MixedPrecisionPolicy(
            param_dtype=dtypes[p.param_dtype], reduce_dtype=dtypes[p.reduce_dtype]
        ),
    }
    if p.cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=False)
    for block in model.layers.values():
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)


def parallelize(model: nn.Module, config: Any, mesh: Mesh) -> nn.Module:
    """``model`` (a :class:`~fastllm.model.Decoder` on ``mesh.device``) wrapped for
    training as ``config`` (a ``TrainConfig``) asks; returns the module to call
    forward on. ``model`` keeps its parameters (DTensors once sharded) and
    stays the object that optimizers, checkpoints and exports see."""
    c, d = config.train, mesh.degrees
    if d.pp > 1:
        keep_stage(model, mesh.pp_rank, d.pp)
    if d.tp > 1:
        apply_tensor_parallel(model, mesh["tp"], config.parallel.sequence_parallel)
    if c.activation_checkpointing:
        apply_activation_checkpointing(model)
    net: nn.Module = model
    if c.compile:
        for block in model.layers.values():
            block.compile()  # in place: parameter names stay as they are
    if config.parallel.backend == "deepspeed":
        return net  # the DeepSpeed engine does data parallelism (parallel/deepspeed.py)
    fsdp = d.dp_shard > 1 or (d.dp > 1 and (d.tp > 1 or d.pp > 1 or config.parallel.cpu_offload))
    if fsdp:
        apply_fsdp(
            model, mesh["dp_replicate", "dp_shard"] if d.dp_replicate > 1 else mesh["dp_shard"], config
        )
    elif d.dp_replicate > 1:
        device = mesh.device
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=mesh.dp_group,
        )
    return net


@contextlib.contextmanager
def no_sync(net: nn.Module, sync: bool) -> Iterator[None]:
    """The context for one micro-batch's forward and backward: gradients are
    reduced over data-parallel replicas only when ``sync`` (the step's last
    micro-batch); before it they accumulate locally (DDP ``no_sync``, FSDP2
    ``set_requires_gradient_sync``)."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(net, FSDPModule):
        net.set_requires_gradient_sync(sync)
        yield
    elif isinstance(net, nn.parallel.DistributedDataParallel) and not sync:
        with net.no_sync():
            yield
    else:
        yield


def clip_grad_norm(
    params: Iterable[torch.Tensor], max_norm: float, mesh: Mesh | None = None
) -> float:
    """Clip the global gradient norm over every shard of every parameter;
    returns the norm before clipping. ``max_norm <= 0``: no clipping.

    Plain tensors go through ``nn.utils.clip_grad_norm_`` (as a one-process
    run always did). DTensor gradients (FSDP, TP) are grouped by mesh and
    placement; each group's norm is reduced across its mesh, so the total
    covers every shard, and plain tensors (e.g. norms outside TP) join it;
    under pipeline parallelism the squares are summed over the stages."""
    from torch.distributed.tensor import DTensor

    limit = max_norm if max_norm > 0 else math.inf
    params = [p for p in params if p.grad is not None]
    pipelined = mesh is not None and mesh.pp_size > 1
    if not pipelined and not any(isinstance(p.grad, DTensor) for p in params):
        return float(nn.utils.clip_grad_norm_(params, limit))
    groups: dict[Any, list[torch.Tensor]] = {}
    for p in params:
        g = p.grad
        key = (id(g.device_mesh), tuple(g.placements)) if isinstance(g, DTensor) else None
        groups.setdefault(key, []).append(g)
    square = torch.zeros((), dtype=torch.float64)
    for grads in groups.values():
        norm = nn.utils.get_total_norm(grads, 2.0)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        square += norm.detach().double().cpu() ** 2
    if pipelined:  # each stage holds other parameters: the total spans every stage
        square = mesh.all_reduce_pp(square.to(mesh.device)).cpu()
    total = float(square.sqrt())
    coef = limit / (total + 1e-6)
    if coef < 1.0:
        for grads in groups.values():
            torch._foreach_mul_(grads, coef)
    return total
