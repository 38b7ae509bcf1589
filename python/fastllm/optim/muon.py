"""Muon: momentum, orthogonalized by Newton–Schulz, for 2-D hidden matrices.

Keller Jordan, "Muon: An optimizer for hidden layers in neural networks"
(2024); Liu et al., "Muon is Scalable for LLM Training" (Moonlight, 2025).

One optimizer class serves the whole model: a parameter group with
``use_muon=True`` (the default) takes Muon steps; a group with
``use_muon=False`` takes AdamW steps. So the Muon + AdamW pair is one object
with one ``state_dict()`` and one ``param_groups`` list that LR schedulers drive
(KellerJordan's ``MuonWithAuxAdam`` has the same shape).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
SCALES = ("naive", "kellerjordan", "mup", "moonlight")


def default_ns_dtype(device: torch.device | str) -> torch.dtype:
    """The Newton–Schulz compute dtype for ``ns_dtype=None``: bfloat16 on CUDA
    (tensor cores make bf16 matmuls several times faster than fp32, and the
    iteration tolerates bf16 rounding), float32 elsewhere (CPUs without bf16
    matmul units run small bf16 matmuls 2.5-5x slower than fp32 ones)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def newton_schulz(
    G: Tensor,
    steps: int = 5,
    eps: float = 1e-7,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """Approximate msign(G) = U Vᵀ (G = U S Vᵀ) with the quintic Newton–Schulz
    iteration X ← aX + (b·XXᵀ + c·(XXᵀ)²)X, in bfloat16 by default.

    G is a matrix [m, n] or a batch of them [k, m, n]; a batch is iterated
    with batched matmuls (one kernel per product for all k matrices), each
    matrix on its own, as if passed alone.
    Each matrix is divided by its Frobenius norm first (so every singular
    value is <= 1) and the iteration runs on the wide orientation (a tall G is
    transposed), where XXᵀ is the smaller Gram matrix. These coefficients trade
    exactness for speed: singular values land in about [0.7, 1.2] rather than
    at 1. Returns a tensor of G's shape in ``dtype``: bfloat16 suits GPUs;
    float32 is faster on CPUs and more exact (bf16 rounding noise, ~2⁻⁸ of the
    norm, is amplified by the iteration like a small singular value, so in bf16
    the null space of a rank-deficient G comes back with singular values up to
    ~0.7; in float32 it stays near 0).
    """
    if G.ndim not in (2, 3):
        raise ValueError(
            f"newton_schulz expects a 2-D matrix or a 3-D batch of them, got shape {tuple(G.shape)}"
        )
    if steps < 0:
        raise ValueError(f"newton_schulz: steps must be >= 0, got {steps}")
    a, b, c = coefficients
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    if X.ndim == 2:
        X = X / X.norm().clamp(min=eps)
        for _ in range(steps):
            A = X @ X.T
            # addmm fuses the scale into the matmul: one kernel, one rounding.
            B = torch.addmm(A, A, A, beta=b, alpha=c)
            X = torch.addmm(X, B, X, beta=a)
    else:
        X = X / torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).clamp(min=eps)
        # Three workspaces written in place (X ping-pongs with Y): no
        # allocations inside the loop.
        k, m, _ = X.shape
        A = X.new_empty(k, m, m)
        B = torch.empty_like(A)
        Y = torch.empty_like(X)
        for _ in range(steps):
            torch.bmm(X, X.mT, out=A)
            torch.baddbmm(A, A, A, beta=b, alpha=c, out=B)
            torch.baddbmm(X, B, X, beta=a, out=Y)
            X, Y = Y, X
    return X.mT if tall else X


def _is_dtensor(t: Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def update_scale(scale: str, shape: torch.Size | tuple[int, ...]) -> float:
    """The factor on the orthogonalized update of a (d_out, d_in) weight
    (``nn.Linear`` layout):

    - naive: 1
    - kellerjordan: sqrt(max(1, d_out / d_in))
    - mup: sqrt(d_out / d_in)
    - moonlight: 0.2 · sqrt(max(d_out, d_in)), which gives the update the RMS
      (≈ 0.2) of an AdamW update, so AdamW's learning rate can be reused.
    """
    d_out, d_in = shape[0], shape[1]
    if scale == "naive":
        return 1.0
    if scale == "kellerjordan":
        return math.sqrt(max(1.0, d_out / d_in))
    if scale == "mup":
        return math.sqrt(d_out / d_in)
    if scale == "moonlight":
        return 0.2 * math.sqrt(max(d_out, d_in))
    raise ValueError(f"muon scale must be one of {', '.join(SCALES)}, got {scale!r}")


class Muon(torch.optim.Optimizer):
    """Muon for groups with ``use_muon=True``, AdamW for groups with ``use_muon=False``.

    Muon step for a weight W with gradient G (momentum μ, lr η, weight decay λ):

        B ← μB + (1-μ)G;  U ← (1-μ)G + μB if nesterov else B
        W ← (1 - ηλ)W - η · scale(W) · newton_schulz(U)

    (The EMA form of momentum differs from B ← μB + G only by the factor 1-μ,
    which the normalization inside newton_schulz removes.)
    The AdamW groups use ``betas`` and ``eps`` and their own ``lr`` and
    ``weight_decay`` (decoupled, as ``torch.optim.AdamW``).

    ``sharded`` says how DTensor (FSDP2, TP) matrices are orthogonalized
    whole: ``owner`` or ``gather_all`` (:mod:`fastllm.optim.sharded_muon`).

    ``ns_dtype`` is the Newton–Schulz compute dtype; None picks per device:
    bfloat16 on CUDA (fast on tensor cores), float32 elsewhere (CPUs without
    bf16 matmul units run the small bf16 matmuls 2.5-5x slower; see
    :func:`default_ns_dtype`). A group may set its own.

    A step orthogonalizes the matrices of a group that share a shape (after
    turning tall ones wide) as one batch, and updates momentum, weights and the
    AdamW state with ``torch._foreach_*`` ops: a handful of kernels per group
    rather than per parameter. The state (``momentum_buffer`` per Muon
    parameter; ``step``, ``exp_avg``, ``exp_avg_sq`` per AdamW parameter) is
    per parameter as in ``torch.optim``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        scale: str = "kellerjordan",
        *,
        ns_dtype: torch.dtype | None = None,
        sharded: str = "owner",
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            ns_steps=ns_steps,
            scale=scale,
            ns_dtype=ns_dtype,
            sharded=sharded,
            use_muon=True,
            betas=tuple(betas),
            eps=eps,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # load_state_dict goes through here: a state dict saved before a group
        # setting existed gets its default (ns_dtype came later).
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("ns_dtype", None)
            group.setdefault("sharded", "owner")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        g = self.param_groups[-1]
        i = len(self.param_groups) - 1
        for key in ("lr", "weight_decay", "eps"):
            if not (isinstance(g[key], (int, float)) and g[key] >= 0):
                raise ValueError(f"Muon param_groups[{i}].{key} must be >= 0, got {g[key]!r}")
        if not 0.0 <= g["momentum"] < 1.0:
            raise ValueError(
                f"Muon param_groups[{i}].momentum must be in [0, 1), got {g['momentum']!r}"
            )
        if not all(0.0 <= b < 1.0 for b in g["betas"]):
            raise ValueError(f"Muon param_groups[{i}].betas must be in [0, 1), got {g['betas']!r}")
        if not g["use_muon"]:
            return
        if g["scale"] not in SCALES:
            raise ValueError(
                f"Muon param_groups[{i}].scale must be one of {', '.join(SCALES)}, got {g['scale']!r}"
            )
        if not (g["ns_dtype"] is None or isinstance(g["ns_dtype"], torch.dtype)):
            raise ValueError(
                f"Muon param_groups[{i}].ns_dtype must be a torch.dtype or None, got {g['ns_dtype']!r}"
            )
        if g["sharded"] not in ("owner", "gather_all"):
            raise ValueError(
                f"Muon param_groups[{i}].sharded must be owner or gather_all, got {g['sharded']!r}"
            )
        if not (isinstance(g["ns_steps"], int) and g["ns_steps"] >= 1):
            raise ValueError(
                f"Muon param_groups[{i}].ns_steps must be an int >= 1, got {g['ns_steps']!r}"
            )
        names = g.get("param_names") or [None] * len(g["params"])
        for p, name in zip(g["params"], names, strict=True):
            if p.ndim != 2:
                what = f"parameter {name!r}" if name else "a parameter"
                raise ValueError(
                    f"Muon takes 2-D matrices only; {what} has shape {tuple(p.shape)} "
                    "(put it in a group with use_muon=False for AdamW)"
                )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_step(group)
            else:
                self._adamw_step(group)
        return loss

    def _muon_step(self, group: dict[str, Any]) -> None:
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        bufs = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p.grad)
            bufs.append(state["momentum_buffer"])
        torch._foreach_lerp_(bufs, grads, 1 - mu)
        updates = torch._foreach_lerp(grads, bufs, mu) if group["nesterov"] else bufs
        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)
        dtype = group["ns_dtype"]
        sharded = [i for i, p in enumerate(params) if _is_dtensor(p)]
        if sharded:
            # Sharded matrices (FSDP2, TP): whole-matrix Newton–Schulz, each
            # matrix once, on its owner (optim/sharded_muon.py).
            from fastllm.optim.sharded_muon import orthogonalize_sharded

            device = params[sharded[0]].to_local().device
            ns_dtype = default_ns_dtype(device) if dtype is None else dtype
            steps = group["ns_steps"]
            locals_ = orthogonalize_sharded(
                [updates[i] for i in sharded],
                lambda X: newton_schulz(X, steps=steps, dtype=ns_dtype),
                gather_all=group["sharded"] == "gather_all",
            )
            for i, u in zip(sharded, locals_, strict=True):
                scale = update_scale(group["scale"], params[i].shape)
                params[i].to_local().add_(u.to(params[i].dtype), alpha=-lr * scale)
            keep = [i for i in range(len(params)) if not _is_dtensor(params[i])]
            params = [params[i] for i in keep]
            updates = [updates[i] for i in keep]
            if not params:
                return
        for device, idx_wide, idx_tall, scale_wide, scale_tall in self._plan(group, params):
            ns_dtype = default_ns_dtype(device) if dtype is None else dtype
            wide = [updates[i] for i in idx_wide] + [updates[i].T for i in idx_tall]
            if len(wide) == 1:
                X = newton_schulz(wide[0], steps=group["ns_steps"], dtype=ns_dtype).unsqueeze(0)
            else:
                X = newton_schulz(torch.stack(wide), steps=group["ns_steps"], dtype=ns_dtype)
            outs = X.unbind(0)
            nw = len(idx_wide)
            if idx_wide:
                torch._foreach_add_(
                    [params[i] for i in idx_wide], outs[:nw], alpha=-lr * scale_wide
                )
            if idx_tall:
                torch._foreach_add_(
                    [params[i] for i in idx_tall], [o.T for o in outs[nw:]], alpha=-lr * scale_tall
                )

    def _plan(self, group: dict[str, Any], params: list[Tensor]) -> list[tuple[Any, ...]]:
        """How a group's matrices batch for Newton–Schulz: one batch per
        (device, dtype, wide shape), a tall matrix joining the wide ones of its
        transposed shape; each batch lists its wide and its tall members (all
        wide ones share a shape, so a scale; likewise the tall ones). Cached
        per group and set of parameters with gradients: recomputing it in
        Python every step costs as much as a small model's momentum update."""
        key = (group["scale"], tuple(id(p) for p in params))
        cache = self.__dict__.setdefault("_plans", {})
        plan = cache.get(id(group))
        if plan is not None and plan[0] == key:
            return plan[1]
        batches: dict[tuple[Any, ...], tuple[list[int], list[int]]] = {}
        for i, p in enumerate(params):
            m, n = p.shape
            wide, tall = batches.setdefault((p.device, p.dtype, min(m, n), max(m, n)), ([], []))
            (tall if m > n else wide).append(i)
        out = []
        for (device, _, m, n), (wide, tall) in batches.items():
            out.append(
                (
                    device,
                    wide,
                    tall,
                    update_scale(group["scale"], (m, n)),
                    update_scale(group["scale"], (n, m)),
                )
            )
        cache[id(group)] = (key, out)
        return out

    def _adamw_step(self, group: dict[str, Any]) -> None:
        # The arithmetic of torch.optim.AdamW's single-tensor path, per element,
        # so the AdamW half of a routed model matches a plain AdamW run.
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        for p in params:
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_add_(steps, 1)
        # The step counts as Python numbers with one conversion per group (the
        # counts are CPU tensors, as in torch.optim, so this never syncs a GPU).
        counts = torch.stack(steps).tolist()
        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, [math.sqrt(1 - beta2**k) for k in counts])
        torch._foreach_add_(denoms, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denoms, [-lr / (1 - beta1**k) for k in counts])
