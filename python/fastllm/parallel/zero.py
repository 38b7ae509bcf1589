"""ZeRO stage 1: optimizer states sharded over the data-parallel ranks.

Parameters and gradients stay whole on every rank (as under DDP); each
parameter has one *owner* among the data-parallel ranks, and only the owner
keeps its optimizer state and updates it. One step is the ZeRO paper's:

1. backward accumulates whole local gradients (no communication per
   micro-batch);
2. :meth:`ZeroOne.reduce_gradients`: each owner receives the sum of its
   parameters' gradients (one ``reduce`` per owner of a flat bucket — the
   bytes of a reduce-scatter, Φ); the other ranks drop those gradients, so
   the optimizer (any ``torch.optim`` optimizer: it skips parameters without
   a gradient) steps the owned ones only and creates no state for the rest;
3. :meth:`ZeroOne.broadcast_parameters` after the step: each owner sends its
   updated parameters to the others (one ``broadcast`` per owner — the bytes
   of an all-gather, Φ): 2Φ per step in all, DDP's cost.

Owners are assigned whole parameters, largest first to the least-loaded
rank, so the optimizer-state bytes per rank are as even as whole tensors
allow and Muon orthogonalizes whole matrices (nothing is split). The
assignment is a function of the parameter names and shapes alone: every rank
(and every tensor-parallel group, on its local shards) computes the same one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (tensor parallelism), or ``t`` itself."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def assign_owners(sizes: dict[str, int], ranks: int) -> dict[str, int]:
    """Owner rank of each named tensor: largest first to the least-loaded rank
    (ties to the lower rank, names ordered for determinism)."""
    load = [0] * ranks
    owners: dict[str, int] = {}
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        rank = min(range(ranks), key=lambda r: (load[r], r))
        owners[name] = rank
        load[rank] += size
    return owners


class ZeroOne:
    """The ZeRO-1 partition of ``model``'s trainable parameters over ``mesh``'s
    data-parallel group."""

    def __init__(self, model: nn.Module, mesh: Any) -> None:
        self.mesh = mesh
        self.group = mesh.dp_group
        self.size = mesh.dp_size
        self.rank = mesh.dp_rank
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        owners = assign_owners({n: _local(p).numel() for n, p in named}, self.size)
        # Global ranks of the data-parallel group, indexed by data-parallel rank.
        self.global_ranks = dist.get_process_group_ranks(self.group)
        self.buckets: list[list[nn.Parameter]] = [[] for _ in range(self.size)]
        for name, p in named:
            self.buckets[owners[name]].append(p)
        self.owned = set(map(id, self.buckets[self.rank]))

    def owns(self, p: torch.Tensor) -> bool:
        return id(p) in self.owned

    def numel(self, rank: int | None = None) -> int:
        """Elements of the parameters ``rank`` (default: this one) owns."""
        bucket = self.buckets[self.rank if rank is None else rank]
        return sum(_local(p).numel() for p in bucket)

    @torch.no_grad()
    def reduce_gradients(self) -> None:
        """Each owner gets the data-parallel mean of its parameters' gradients
        (the loop's loss scale counts on DDP's mean); everyone else's copies of
        them are dropped."""
        for owner, bucket in enumerate(self.buckets):
            if not bucket:
                continue
            grads = [
                _local(p.grad) if p.grad is not None else torch.zeros_like(_local(p))
                for p in bucket
            ]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.reduce(flat, dst=self.global_ranks[owner], op=dist.ReduceOp.SUM, group=self.group)
            if owner == self.rank:
                flat.div_(self.size)
                offset = 0
                for p, g in zip(bucket, grads, strict=True):
                    n = g.numel()
                    piece = flat[offset : offset + n].view_as(g)
                    if p.grad is None:
                        p.grad = _rewrap(piece.clone(), p)
                    else:
                        g.copy_(piece)
                    offset += n
            else:
                for p in bucket:
                    p.grad = None

    @torch.no_grad()
    def broadcast_parameters(self) -> None:
        """Every rank gets the owners' updated parameters."""
        for owner, bucket in enumerate(self.buckets):
            if not bucket:
                continue
            locals_ = [_local(p) for p in bucket]
            flat = torch.cat([t.reshape(-1) for t in locals_])
            dist.broadcast(flat, src=self.global_ranks[owner], group=self.group)
            if owner != self.rank:
                offset = 0
                for t in locals_:
                    n = t.numel()
                    t.copy_(flat[offset : offset + n].view_as(t))
                    offset += n

    def drop_unowned_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Forget optimizer state of parameters this rank does not own (a
        checkpoint load fills in every parameter's)."""
        for p in list(optimizer.state):
            if not self.owns(p):
                del optimizer.state[p]


def _rewrap(local: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``local`` as a gradient for ``like`` (a DTensor when ``like`` is one)."""
    from torch.distributed.tensor import DTensor

    if isinstance(like, DTensor):
        return DTensor.from_local(local, like.device_mesh, like.placements, run_check=False)
    return local
