"""Parallel training: process groups, the device mesh, and ``parallelize``."""

from fastllm.parallel.distributed import DistInfo, all_reduce_sum, barrier, setup, teardown
from fastllm.parallel.mesh import Mesh, build_mesh
from fastllm.parallel.parallelize import apply_activation_checkpointing, no_sync, parallelize

__all__ = [
    "DistInfo",
    "Mesh",
    "all_reduce_sum",
    "apply_activation_checkpointing",
    "barrier",
    "build_mesh",
    "no_sync",
    "parallelize",
    "setup",
    "teardown",
]
