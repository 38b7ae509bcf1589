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
from fastllm.parallel.pipeline import keep_stage, stage_chunks
from fastllm.parallel.zero import ZeroOne


def _selective_policy() -> Callable:
    """Which ops' outputs a selectively checkpointed block keeps: the matmuls
    and attention (costly to redo), as torchtitan's op-level selective AC;
    norms, activations and other pointwise ops are recomputed."""
    from torch.utils.checkpoint import CheckpointPolicy

    aten = torch.ops.aten
    save = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.linear.default}
    for name in (
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_cudnn_attention",
    ):
        if hasattr(aten, name):
            save.add(getattr(aten, name).default)

    def policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
        return CheckpointPolicy.MUST_SAVE if op in save else CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def apply_activation_checkpointing(model: nn.Module, mode: str | bool = "full") -> None:
    """Recompute each block in backward (``torch.utils.checkpoint``), applied from
    outside the model: the block's ``forward`` is wrapped on the instance, so
    parameter names and state dicts stay as they are. ``mode``: ``full``
    keeps only each block's input; ``selective`` also keeps its matmul and
    attention outputs (:func:`_selective_policy`)."""
    mode = {True: "full", False: "none"}.get(mode, mode)  # type: ignore[arg-type]
    if mode == "none":
        return
    extra: dict[str, Any] = {}
    if mode == "selective":
        from functools import partial

        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        extra["context_fn"] = partial(create_selective_checkpoint_contexts, _selective_policy())
    for block in model.layers.values():
        inner = block.forward

        def forward(*args: Any, _inner: Callable = inner, **kwargs: Any) -> torch.Tensor:
            return checkpoint(_inner, *args, use_reentrant=False, **extra, **kwargs)

        block.forward = forward


def _grad_like_param(p: torch.Tensor) -> None:
    """A DTensor parameter's gradient laid out as the parameter is."""
    if p.grad is not None and tuple(p.grad.placements) != tuple(p.placements):
        p.grad = p.grad.redistribute(p.device_mesh, p.placements)


def apply_tensor_parallel(
    model: nn.Module, tp_mesh: Any, sequence_parallel: bool, loss_parallel: bool = False
) -> None:
    """Megatron's split of each block over ``tp_mesh``: q/k/v and w1/w3
    column-wise (each rank a slice of the heads / hidden units), o and w2
    row-wise; the embedding row-wise and the head column-wise (both by
    vocabulary rows, so a tied weight stays one tensor). With sequence
    parallelism the norms and the residual stream hold a slice of the
    sequence, gathered before attention and the MLP. With ``loss_parallel``
    the head's logits stay sharded by vocabulary (a DTensor): the loss runs
    under :func:`loss_context`, and no rank ever holds a whole row of logits."""
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
        "output": ColwiseParallel(
            input_layouts=stream,
            output_layouts=Shard(-1) if loss_parallel else Replicate(),
            use_local_output=not loss_parallel,
        ),
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
    if model.tok_embeddings is not None:
        # DTensor's embedding backward yields a replicated (whole) gradient for
        # the row-sharded weight: every rank would hold the full vocabulary's
        # gradient. Keep only this rank's rows (a local slice, no communication).
        model.tok_embeddings.weight.register_post_accumulate_grad_hook(_grad_like_param)
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


def apply_fsdp(
    model: nn.Module, dp_mesh: Any, config: Any, roots: list[nn.Module] | None = None
) -> None:
    """FSDP2: each block, then the root (embedding, final norm, head), sharded
    over ``dp_mesh`` (1-D: FSDP; 2-D replicate × shard: HSDP). ``roots``: the
    modules forward runs on, when not ``model`` (interleaved pipeline stages)."""
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
    for root in roots or [model]:
        fully_shard(root, **kwargs)


def parallelize(model: nn.Module, config: Any, mesh: Mesh) -> nn.Module:
    """``model`` (a :class:`~fastllm.model.Decoder` on ``mesh.device``) wrapped for
    training as ``config`` (a ``TrainConfig``) asks; returns the module to call
    forward on. ``model`` keeps its parameters (DTensors once sharded) and
    stays the object that optimizers, checkpoints and exports see."""
    c, d = config.train, mesh.degrees
    virtual = config.parallel.pp_virtual
    if d.pp > 1:
        keep_stage(model, mesh.pp_rank, d.pp, virtual)
    if d.tp > 1:
        apply_tensor_parallel(
            model, mesh["tp"], config.parallel.sequence_parallel, uses_loss_parallel(config, mesh)
        )
    apply_activation_checkpointing(model, c.activation_checkpointing)
    net: nn.Module = model
    if c.compile:
        for block in model.layers.values():
            block.compile()  # in place: parameter names stay as they are
    roots = None
    if d.pp > 1 and virtual > 1:
        sp = d.tp if d.tp > 1 and config.parallel.sequence_parallel else 1
        roots = stage_chunks(model, mesh.pp_rank, d.pp, virtual, seq_shards=sp)
        net = nn.ModuleList(roots)  # one module per local stage, sharing model's parameters
    if config.parallel.backend == "deepspeed":
        return net  # the DeepSpeed engine does data parallelism (parallel/deepspeed.py)
    if config.parallel.zero == 1:
        return net  # ZeRO-1 reduces gradients itself (sharded_optimizer)
    fsdp = (
        d.dp_shard > 1
        or (d.dp > 1 and (d.tp > 1 or d.pp > 1 or config.parallel.cpu_offload))
        or (config.parallel.fsdp_one_process and mesh.device_mesh is not None)
    )
    if fsdp:
        dp_mesh = mesh["dp_replicate", "dp_shard"] if d.dp_replicate > 1 else mesh["dp_shard"]
        apply_fsdp(model, dp_mesh, config, roots)
    elif d.dp_replicate > 1:
        device = mesh.device
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=mesh.dp_group,
        )
    return net


def uses_loss_parallel(config: Any, mesh: Mesh) -> bool:
    """Whether the head's logits stay vocabulary-sharded (tp without pp)."""
    d = mesh.degrees
    return config.parallel.loss_parallel and d.tp > 1 and d.pp == 1


def loss_context(enabled: bool) -> contextlib.AbstractContextManager:
    """``torch.distributed.tensor.parallel.loss_parallel()`` when ``enabled``:
    cross-entropy on vocabulary-sharded logits, around forward *and* backward."""
    if not enabled:
        return contextlib.nullcontext()
    from torch.distributed.tensor.parallel import loss_parallel

    return loss_parallel()


def local_value(t: torch.Tensor) -> torch.Tensor:
    """A replicated DTensor's value as a plain tensor (or ``t`` itself)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def sharded_optimizer(model: nn.Module, config: Any, mesh: Mesh) -> ZeroOne | None:
    """The ZeRO-1 partition of ``model`` when ``parallel.zero = 1`` over more
    than one data-parallel rank (the engine reduces gradients to the owners
    and broadcasts their updates), else None."""
    p = config.parallel
    if p.backend == "torch" and p.zero == 1 and mesh.dp_size > 1:
        return ZeroOne(model, mesh)
    return None


@contextlib.contextmanager
def no_sync(net: nn.Module, sync: bool) -> Iterator[None]:
    """The context for one micro-batch's forward and backward: ``sync`` is
    true on the step's last micro-batch.

    DDP all-reduces on the last only (before it gradients accumulate
    locally, ``no_sync``). FSDP2 reduce-scatters every micro-batch, so the
    gradients stay sharded throughout (ZeRO-2/3 memory: a rank never holds a
    whole gradient past its block's backward); only HSDP's all-reduce over
    the replicas waits for the last (``set_requires_all_reduce``).
    """
    from torch.distributed.fsdp import FSDPModule

    if isinstance(net, nn.ModuleList):  # interleaved pipeline stages
        for chunk in net:
            if isinstance(chunk, FSDPModule):
                chunk.set_requires_all_reduce(sync)
        yield
    elif isinstance(net, FSDPModule):
        net.set_requires_all_reduce(sync)
        yield
    elif isinstance(net, nn.parallel.DistributedDataParallel) and not sync:
        with net.no_sync():
            yield
    else:
        yield


def reduce_partial_grads(params: Iterable[torch.Tensor]) -> None:
    """Finish the gradients DTensor left as pending sums (``Partial``: under
    sequence parallelism, the norms' weights, whose gradient each rank holds
    for its slice of the sequence): one all-reduce each, after backward, to
    the parameter's own layout. Left partial, every later use (the gradient
    norm, each of AdamW's foreach ops) would all-reduce it again."""
    from torch.distributed.tensor import DTensor, Partial

    for p in params:
        g = p.grad
        if isinstance(g, DTensor) and any(isinstance(x, Partial) for x in g.placements):
            p.grad = g.redistribute(g.device_mesh, p.placements)


def clip_grad_norm(
    params: Iterable[torch.Tensor],
    max_norm: float,
    mesh: Mesh | None = None,
    *,
    dp_partitioned: bool = False,
) -> float:
    """Clip the global gradient norm over every shard of every parameter;
    returns the norm before clipping. ``max_norm <= 0``: no clipping.

    Plain tensors go through ``nn.utils.clip_grad_norm_`` (as a one-process
    run always did). DTensor gradients (FSDP, TP) are grouped by mesh and
    placement; each group's norm is reduced across its mesh, so the total
    covers every shard, and plain tensors (e.g. norms outside TP) join it;
    under pipeline parallelism the squares are summed over the stages, and
    with ``dp_partitioned`` (ZeRO-1: each data-parallel rank holds the reduced
    gradients of its own parameters only) over the data-parallel ranks."""
    from torch.distributed.tensor import DTensor

    limit = max_norm if max_norm > 0 else math.inf
    params = [p for p in params if p.grad is not None]
    pipelined = mesh is not None and mesh.pp_size > 1
    dp_partitioned = dp_partitioned and mesh is not None and mesh.dp_size > 1
    if not pipelined and not dp_partitioned and not any(isinstance(p.grad, DTensor) for p in params):
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
    if dp_partitioned:
        square = mesh.all_reduce_dp(square.to(mesh.device)).cpu()
    total = float(square.sqrt())
    coef = limit / (total + 1e-6)
    if coef < 1.0:
        for grads in groups.values():
            torch._foreach_mul_(grads, coef)
    return total
