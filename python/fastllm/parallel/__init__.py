"""Parallel training: ``[parallel]``, process groups, the device mesh, ``parallelize``."""

from fastllm.parallel.config import Degrees, ParallelConfig
from fastllm.parallel.distributed import DistInfo, all_reduce_sum, barrier, setup, teardown
from fastllm.parallel.mesh import Mesh, build_mesh
from fastllm.parallel.parallelize import (
    apply_activation_checkpointing,
    apply_fsdp,
    apply_tensor_parallel,
    clip_grad_norm,
    local_value,
    loss_context,
    no_sync,
    parallelize,
    reduce_partial_grads,
    sharded_optimizer,
    uses_loss_parallel,
)
from fastllm.parallel.zero import ZeroOne

__all__ = [
    "Degrees",
    "DistInfo",
    "Mesh",
    "ParallelConfig",
    "ZeroOne",
    "all_reduce_sum",
    "apply_activation_checkpointing",
    "apply_fsdp",
    "apply_tensor_parallel",
    "barrier",
    "build_mesh",
    "clip_grad_norm",
    "local_value",
    "loss_context",
    "no_sync",
    "parallelize",
    "reduce_partial_grads",
    "setup",
    "sharded_optimizer",
    "teardown",
    "uses_loss_parallel",
]
