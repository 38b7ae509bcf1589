"""Where the model gets wrapped: ``parallelize(model, config, mesh)``.

The order follows torchtitan's ``parallelize_llama``: activation
checkpointing on each block, then ``torch.compile``, then the data-parallel
wrapper (DDP over the mesh's ``dp`` dimension). The parallelism issue adds
tensor/sequence parallel (before checkpointing), FSDP2 (in place of DDP) and
pipeline stages here; the Trainer only ever calls :func:`parallelize` and
:func:`no_sync`, and never unwraps what they return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fastllm.parallel.mesh import Mesh


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block in backward (``torch.utils.checkpoint``), applied from
    outside the model: the block's ``forward`` is wrapped on the instance, so
    parameter names and state dicts stay as they are."""
    for block in model.layers.values():
        inner = block.forward

        def forward(*args: Any, _inner: Callable = inner, **kwargs: Any) -> torch.Tensor:
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward


def parallelize(model: nn.Module, config: Any, mesh: Mesh) -> nn.Module:
    """``model`` (a :class:`~fastllm.model.Decoder` on ``mesh.device``) wrapped for
    training as ``config`` (a ``TrainConfig``) asks: returns the module to call
    forward on. ``model`` itself keeps its parameters and stays the object that
    optimizers, checkpoints and exports see."""
    c = config.train
    if c.activation_checkpointing:
        apply_activation_checkpointing(model)
    net: nn.Module = model
    if c.compile:
        # Compile the bare model and wrap DDP around it (torchtitan's order), so
        # DDP's hooks see the compiled module's parameters, which are the model's.
        net = torch.compile(net)
    if mesh.dp_size > 1:
        device = mesh.device
        net = nn.parallel.DistributedDataParallel(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=mesh.dp_group,
        )
    return net


def no_sync(net: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """The context for one micro-batch's backward: gradients are reduced over
    data-parallel replicas only when ``sync`` (the step's last micro-batch)."""
    if sync or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()
