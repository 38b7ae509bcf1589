"""The device mesh of a run: named dimensions over the world's processes.

Today the mesh has one dimension, ``dp`` (data parallel, the whole world);
the parallelism issue adds ``dp_replicate``/``dp_shard``/``tp``/``pp`` to the
same object. Everything that needs "which data-parallel rank am I" asks the
mesh, never the global rank: under tensor or pipeline parallelism the two
differ, and ranks of one tensor-parallel group must read the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fastllm.parallel.distributed import DistInfo


@dataclass(frozen=True)
class Mesh:
    """This process's place in the run: its :class:`DistInfo` and, when the run
    is distributed, the ``torch.distributed`` ``DeviceMesh`` with named dims."""

    info: DistInfo
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

    def _dim(self, name: str) -> Any:
        if self.device_mesh is None or name not in (self.device_mesh.mesh_dim_names or ()):
            return None
        return self.device_mesh[name]

    @property
    def dp_size(self) -> int:
        """Data-parallel degree: how many different batches one step reads."""
        sub = self._dim("dp")
        return 1 if sub is None else sub.size()

    @property
    def dp_rank(self) -> int:
        """This process's index among the data-parallel replicas."""
        sub = self._dim("dp")
        return 0 if sub is None else sub.get_local_rank()

    @property
    def dp_group(self) -> Any:
        """The process group of the ``dp`` dimension (None on one process)."""
        sub = self._dim("dp")
        return None if sub is None else sub.get_group()

    def all_reduce_dp(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the data-parallel replicas, in place (no-op without any)."""
        if self.dp_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.dp_group)
        return t


def build_mesh(info: DistInfo) -> Mesh:
    """The mesh of ``info``'s world: one ``dp`` dimension over every process."""
    if not info.distributed:
        return Mesh(info)
    from torch.distributed.device_mesh import init_device_mesh

    device_mesh = init_device_mesh(info.device.type, (info.world_size,), mesh_dim_names=("dp",))
    return Mesh(info, device_mesh)
