"""Newton–Schulz on sharded matrices: each whole matrix orthogonalized once.

Under FSDP2 (and tensor parallelism) a Muon parameter is a DTensor whose
rank holds a slice of the matrix. Orthogonalizing the slice would be a
silent, wrong update (DeepSpeed issue 7807); running Newton–Schulz on the
DTensor is right but redistributes data at every matmul and repeats the
work on every rank. Here, per step:

- a matrix sharded along one mesh dimension (FSDP2's ``Shard(0)``: ZeRO-2/3,
  HSDP's shard dimension) has one *owner* among that dimension's ranks,
  assigned by Newton–Schulz FLOPs (largest first, to the least-loaded rank;
  a function of the shapes alone, so every rank computes the same). Each
  rank sends the owner its slice of the momentum update (one ``gather`` per
  owner over a flat bucket of all the matrices it owns), the owner stacks
  the whole matrices of one shape and orthogonalizes them as a batch, and
  sends every rank its slice of the result back (one ``scatter`` per
  owner). Bytes per rank are about twice its shard of the Muon matrices,
  and the Newton–Schulz work is split over the ranks;
- a matrix sharded along several mesh dimensions (FSDP2 × tensor parallel)
  is gathered whole on every rank of its mesh (the Moonlight scheme,
  ``full_tensor``), orthogonalized there, and each rank keeps its part
  (under tensor parallelism the full matrix is gathered across the tensor
  group: no per-head orthogonalization).

Momentum stays sharded like the parameter (it is the optimizer state that
DCP checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def ns_flops(shape: tuple[int, int], steps: int = 5) -> float:
    """Newton–Schulz FLOPs of one (m, n) matrix: per iteration on the wide
    orientation (m <= n) X Xᵀ (2m²n), A·A (2m³) and B·X (2m²n)."""
    m, n = min(shape), max(shape)
    return steps * (4.0 * m * m * n + 2.0 * m**3)


def assign_owners(shapes: list[tuple[int, int]], ranks: int) -> list[int]:
    """Owner rank of each matrix: largest Newton–Schulz cost first, to the
    least-loaded rank (ties to the lower rank; equal costs keep their order)."""
    load = [0.0] * ranks
    owners = [0] * len(shapes)
    order = sorted(range(len(shapes)), key=lambda i: (-ns_flops(shapes[i]), i))
    for i in order:
        r = min(range(ranks), key=lambda k: (load[k], k))
        owners[i] = r
        load[r] += ns_flops(shapes[i])
    return owners


def _single_shard_dim(t: Any) -> int | None:
    """The mesh dimension a DTensor is sharded along when it is exactly one
    plain ``Shard(0)`` (the others replicated), else None."""
    from torch.distributed.tensor import Replicate, Shard

    dims = [i for i, p in enumerate(t.placements) if not isinstance(p, Replicate)]
    if len(dims) == 1 and type(t.placements[dims[0]]) is Shard and t.placements[dims[0]].dim == 0:
        return dims[0]
    return None


def orthogonalize_sharded(
    updates: list[Any],
    orthogonalize: Callable[[Tensor], Tensor],
    gather_all: bool = False,
) -> list[Tensor]:
    """The local slices of ``orthogonalize(whole update)`` for each DTensor
    in ``updates`` (momentum updates of 2-D parameters, sharded as the
    parameters are). ``orthogonalize`` takes a batch [k, m, n] of wide
    matrices and returns theirs; tall matrices go through it transposed.
    ``gather_all``: every matrix by the Moonlight scheme (gathered whole and
    orthogonalized on every rank), for comparison."""
    out: list[Tensor | None] = [None] * len(updates)
    by_group: dict[Any, list[int]] = {}
    gathered: list[int] = []
    for i, u in enumerate(updates):
        d = None if gather_all else _single_shard_dim(u)
        if d is None:
            gathered.append(i)
        else:
            by_group.setdefault((id(u.device_mesh), d), []).append(i)
    for idx in by_group.values():
        _owner_scheme([updates[i] for i in idx], orthogonalize, [out, idx])
    if gathered:
        wholes = _batched(orthogonalize, [updates[i].full_tensor() for i in gathered])
        for i, whole in zip(gathered, wholes, strict=True):
            out[i] = _local_part(whole, updates[i])
    return out  # type: ignore[return-value]


def _batched(orthogonalize: Callable[[Tensor], Tensor], mats: list[Tensor]) -> list[Tensor]:
    """``orthogonalize`` over matrices of any shapes: one batch per wide shape."""
    res: list[Tensor | None] = [None] * len(mats)
    batches: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(mats):
        batches.setdefault((min(m.shape), max(m.shape)), []).append(i)
    for idx in batches.values():
        wide = [mats[i] if mats[i].size(0) <= mats[i].size(1) else mats[i].T for i in idx]
        X = orthogonalize(torch.stack(wide))
        for j, i in enumerate(idx):
            res[i] = X[j] if mats[i].size(0) <= mats[i].size(1) else X[j].T
    return res  # type: ignore[return-value]


def _local_part(whole: Tensor, like: Any) -> Tensor:
    """This rank's part of ``whole`` laid out as the DTensor ``like``."""
    from torch.distributed.tensor import DTensor, Replicate

    full = DTensor.from_local(
        whole.to(like.dtype), like.device_mesh, [Replicate()] * like.device_mesh.ndim, run_check=False
    )
    return full.redistribute(like.device_mesh, like.placements).to_local()


def _owner_scheme(
    updates: list[Any], orthogonalize: Callable[[Tensor], Tensor], sink: list[Any]
) -> None:
    """Gather to owners, orthogonalize, scatter back: for DTensors sharded
    ``Shard(0)`` along one mesh dimension (the same for all of ``updates``)."""
    out, positions = sink
    d = _single_shard_dim(updates[0])
    mesh = updates[0].device_mesh
    group = mesh.get_group(d)
    n = mesh.size(d)
    me = mesh.get_local_rank(d)
    shapes = [tuple(u.shape) for u in updates]
    rows = [math.ceil(s[0] / n) for s in shapes]  # torch.chunk's (and DTensor's) slice height
    owners = assign_owners(shapes, n)
    dtype = updates[0].to_local().dtype
    device = updates[0].to_local().device
    plan = []  # per owner: (its matrices, their padded slice sizes, global rank)
    for owner in range(n):
        mine = [i for i, o in enumerate(owners) if o == owner]
        if mine:
            sizes = [rows[i] * shapes[i][1] for i in mine]
            plan.append((owner, mine, sizes, dist.get_global_rank(group, owner)))
    # 1. Every owner gathers its matrices' slices (data movement only)...
    received = None
    for owner, mine, sizes, dst in plan:
        flat = torch.zeros(sum(sizes), dtype=dtype, device=device)
        offset = 0
        for i, size in zip(mine, sizes, strict=True):
            local = updates[i].to_local()
            flat[offset : offset + local.numel()] = local.reshape(-1)
            offset += size
        chunks = [torch.empty_like(flat) for _ in range(n)] if me == owner else None
        dist.gather(flat, chunks, dst=dst, group=group)
        if me == owner:
            received = (mine, sizes, chunks)
    # 2. ...then all owners orthogonalize at once (each its own matrices)...
    pieces = None
    if received is not None:
        mine, sizes, chunks = received
        wholes = []
        for k, i in enumerate(mine):
            start = sum(sizes[:k])
            parts = [c[start : start + sizes[k]].view(rows[i], shapes[i][1]) for c in chunks]
            wholes.append(torch.cat(parts)[: shapes[i][0]])
        results = _batched(orthogonalize, wholes)
        pieces = []
        for r in range(n):
            buf = torch.zeros(sum(sizes), dtype=dtype, device=device)
            start = 0
            for k, i in enumerate(mine):
                part = results[k][r * rows[i] : (r + 1) * rows[i]].to(dtype).reshape(-1)
                buf[start : start + part.numel()] = part
                start += sizes[k]
            pieces.append(buf)
    # 3. ...and each sends every rank its slices back.
    for owner, mine, sizes, src in plan:
        back = torch.empty(sum(sizes), dtype=dtype, device=device)
        dist.scatter(back, pieces if me == owner else None, src=src, group=group)
        start = 0
        for k, i in enumerate(mine):
            local = updates[i].to_local()
            out[positions[i]] = back[start : start + local.numel()].view_as(local)
            start += sizes[k]
