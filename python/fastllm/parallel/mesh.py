"""The device mesh of a run: named dimensions over the world's processes.

The mesh has the dimensions ``pp``, ``dp_replicate``, ``dp_shard`` and
``tp`` (in that order, the last varying fastest, so a tensor-parallel group sits on
neighbouring ranks — one node's GPUs), plus ``dp``, the two data-parallel
dimensions flattened. Everything that needs "which data-parallel rank am I"
asks the mesh, never the global rank: ranks of one tensor-parallel group read
the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fastllm.parallel.config import Degrees, ParallelConfig
from fastllm.parallel.distributed import DistInfo

DIMS = ("pp", "dp_replicate", "dp_shard", "tp")


@dataclass(frozen=True)
class Mesh:
    """This process's place in the run: its :class:`DistInfo`, the degrees and,
    when the run is distributed, the ``DeviceMesh`` with named dimensions."""

    info: DistInfo
    degrees: Degrees = Degrees(1, 1, 1, 1)
    device_mesh: Any = None  # torch.distributed.device_mesh.DeviceMesh | None

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def world_size(self) -> int:
        return self.info.world_size

    def __getitem__(self, name: str | tuple[str, ...]) -> Any:
        """The sub-mesh of one dimension (or several), for a wrapper."""
        if self.device_mesh is None:
            raise ValueError("a one-process run has no device mesh")
        return self.device_mesh[name]

    @property
    def dp_size(self) -> int:
        """Data-parallel degree: how many different batches one step reads."""
        return self.degrees.dp

    @property
    def dp_rank(self) -> int:
        """This process's index among the data-parallel replicas."""
        return 0 if self.device_mesh is None else self.device_mesh["dp"].get_local_rank()

    @property
    def tp_size(self) -> int:
        return self.degrees.tp

    @property
    def pp_size(self) -> int:
        return self.degrees.pp

    @property
    def pp_rank(self) -> int:
        """This process's pipeline stage."""
        return 0 if self.device_mesh is None else self.device_mesh["pp"].get_local_rank()

    @property
    def pp_group(self) -> Any:
        return None if self.device_mesh is None else self.device_mesh["pp"].get_group()

    def all_reduce_pp(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the pipeline stages, in place (no-op without any)."""
        if self.pp_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.pp_group)
        return t

    @property
    def dp_group(self) -> Any:
        """The process group of the data-parallel ranks (None on one process)."""
        return None if self.device_mesh is None else self.device_mesh["dp"].get_group()

    def all_reduce_dp(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the data-parallel replicas, in place (no-op without any)."""
        if self.dp_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.dp_group)
        return t


def build_mesh(info: DistInfo, config: ParallelConfig | None = None) -> Mesh:
    """The mesh of ``info``'s world laid out as ``config`` says (by default
    every process is one FSDP shard, ``dp_shard`` = the world size, as in
    torchtitan)."""
    config = config or ParallelConfig()
    degrees = config.degrees(info.world_size)
    if not info.distributed and not (config.fsdp_one_process and dist.is_initialized()):
        return Mesh(info, degrees)
    from torch.distributed.device_mesh import init_device_mesh

    shape = (degrees.pp, degrees.dp_replicate, degrees.dp_shard, degrees.tp)
    device_mesh = init_device_mesh(info.device.type, shape, mesh_dim_names=DIMS)
    device_mesh["dp_replicate", "dp_shard"]._flatten(mesh_dim_name="dp")
    return Mesh(info, degrees, device_mesh)
