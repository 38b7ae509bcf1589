"""Which optimizer each parameter gets, and the optimizer built from that.

Automatic roles, from the modules that own the parameters:

- ``hidden``: the weight of an ``nn.Linear`` inside the network (attention
  q, k, v, o; MLP gate, up, down) → Muon (or AdamW with decay);
- ``head``: the output projection (a Linear named ``output`` or ``lm_head``,
  or any Linear with one output such as a value head) → AdamW with decay;
- ``embedding``: an ``nn.Embedding`` weight, and a head tied to it → AdamW, no decay;
- ``norm``, ``bias``, and any other 1-D tensor → AdamW, no decay;
- ``other``: any other tensor of 2 or more dimensions → AdamW with decay.

``OptimConfig.muon_params`` / ``adamw_params`` (glob patterns on parameter
names, without any ``_orig_mod.``/``module.`` wrapper prefix) override the
automatic choice.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from fastllm.config import Section, check, knob
from fastllm.optim.muon import SCALES, Muon

HEAD_NAMES = ("output", "lm_head")
NS_DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp32": torch.float32}
_WRAPPER_PREFIXES = (
    "_orig_mod.",
    "module.",
    "_fsdp_wrapped_module.",
    "_checkpoint_wrapped_module.",
)


@dataclass(frozen=True)
class OptimConfig(Section):
    """The optimizer of a run (the ``[optim]`` table); ``build(model)`` makes it."""

    table = "optim"

    name: Literal["adamw", "muon"] = knob(
        "adamw", "adamw, or muon (Muon for hidden matrices, AdamW for the rest)"
    )
    lr: float = knob(3e-4, "AdamW learning rate (the AdamW-routed params under muon)")
    betas: tuple[float, float] = knob((0.9, 0.95), "AdamW betas")
    eps: float = knob(1e-8, "AdamW epsilon")
    weight_decay: float = knob(
        0.1, "AdamW decoupled weight decay (never on norms, biases, embeddings)"
    )
    muon_lr: float = knob(0.02, "Muon learning rate")
    muon_momentum: float = knob(0.95, "Muon momentum")
    muon_nesterov: bool = knob(True, "Nesterov momentum in Muon")
    muon_ns_steps: int = knob(5, "Newton-Schulz iterations")
    muon_scale: Literal[SCALES] = knob(  # type: ignore[valid-type]
        "kellerjordan", "update scale: naive, kellerjordan, mup, moonlight"
    )
    muon_weight_decay: float = knob(0.0, "Muon decoupled weight decay")
    muon_ns_dtype: Literal["auto", "bf16", "fp32"] = knob(
        "auto", "Newton-Schulz compute dtype: auto (bf16 on CUDA, fp32 elsewhere), bf16 or fp32"
    )
    muon_sharded: Literal["owner", "gather_all"] = knob(
        "owner",
        "sharded matrices (FSDP2, TP): owner (each matrix gathered to one rank, orthogonalized "
        "there, slices sent back) or gather_all (every rank gathers and orthogonalizes every "
        "matrix, the Moonlight scheme)",
    )
    muon_params: tuple[str, ...] = knob((), "glob patterns of parameter names forced onto Muon")
    adamw_params: tuple[str, ...] = knob((), "glob patterns of parameter names forced onto AdamW")

    def validate(self) -> None:
        for key in ("lr", "eps", "weight_decay", "muon_lr", "muon_weight_decay"):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            f"must be two numbers in [0, 1), got {self.betas!r}",
        )
        check(
            0 <= self.muon_momentum < 1,
            "muon_momentum",
            f"must be in [0, 1), got {self.muon_momentum}",
        )
        check(self.muon_ns_steps >= 1, "muon_ns_steps", f"must be >= 1, got {self.muon_ns_steps}")

    def build(self, model: nn.Module) -> torch.optim.Optimizer:  # type: ignore[override]
        """The optimizer of ``model`` (:func:`build_optimizer`)."""
        return build_optimizer(model, self)


@dataclass(frozen=True)
class Route:
    name: str
    shape: tuple[int, ...]
    role: str  # hidden | head | embedding | norm | bias | other
    optimizer: str  # muon | adamw
    weight_decay: float
    param: torch.Tensor = dataclasses.field(repr=False, compare=False)


def clean_name(name: str) -> str:
    """A parameter name without torch.compile / DDP / FSDP wrapper prefixes."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def _roles(model: nn.Module) -> dict[int, str]:
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    roles: dict[int, str] = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in roles:
                continue
            short = clean_name(mname).rsplit(".", 1)[-1]
            if id(p) in embeddings:
                role = "embedding"
            elif pname == "bias" or p.ndim == 0:
                role = "bias"
            elif p.ndim == 1:
                role = "norm"
            elif isinstance(module, nn.Linear) and (short in HEAD_NAMES or min(p.shape) == 1):
                role = "head"
            elif isinstance(module, nn.Linear) and p.ndim == 2:
                role = "hidden"
            else:
                role = "other"
            roles[id(p)] = role
    return roles


def route_parameters(model: nn.Module, config: OptimConfig) -> list[Route]:
    """Every trainable parameter (a tied one once) with its role, optimizer and decay."""
    roles = _roles(model)
    routes = []
    matched: set[str] = set()
    for raw, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = clean_name(raw)
        role = roles[id(p)]
        to_muon = config.name == "muon" and role == "hidden"
        for pat in config.muon_params:
            if fnmatch.fnmatchcase(name, pat):
                matched.add(pat)
                if p.ndim != 2:
                    raise ValueError(
                        f"optim.muon_params: {pat!r} matches {name!r} of shape {tuple(p.shape)}; Muon takes 2-D matrices only"
                    )
                to_muon = config.name == "muon"
        for pat in config.adamw_params:
            if fnmatch.fnmatchcase(name, pat):
                matched.add(pat)
                to_muon = False
        if to_muon:
            routes.append(Route(name, tuple(p.shape), role, "muon", config.muon_weight_decay, p))
        else:
            decay = config.weight_decay if role in ("hidden", "head", "other") else 0.0
            routes.append(Route(name, tuple(p.shape), role, "adamw", decay, p))
    for pat in (*config.muon_params, *config.adamw_params):
        if pat not in matched:
            raise ValueError(f"optim: pattern {pat!r} matches no parameter")
    return routes


def build_optimizer(
    model: nn.Module, config: OptimConfig | dict[str, Any] | None = None
) -> torch.optim.Optimizer:
    """One optimizer for ``model``: ``torch.optim.AdamW`` when ``config.name`` is
    adamw, else a :class:`Muon` whose AdamW groups hold everything not routed to
    Muon. Each group carries ``param_names``; groups are muon, then AdamW with
    decay, then AdamW without (empty ones left out)."""
    if config is None:
        config = OptimConfig()
    elif isinstance(config, dict):
        config = OptimConfig.from_dict(config)
    routes = route_parameters(model, config)
    muon = [r for r in routes if r.optimizer == "muon"]
    decay = [r for r in routes if r.optimizer == "adamw" and r.weight_decay > 0]
    no_decay = [r for r in routes if r.optimizer == "adamw" and r.weight_decay == 0]
    adamw_groups = [
        {"params": [(r.name, r.param) for r in rs], "weight_decay": wd}
        for rs, wd in ((decay, config.weight_decay), (no_decay, 0.0))
        if rs
    ]
    if config.name == "adamw":
        return torch.optim.AdamW(adamw_groups, lr=config.lr, betas=config.betas, eps=config.eps)
    groups = []
    if muon:
        groups.append({"params": [(r.name, r.param) for r in muon], "use_muon": True})
    groups += [{**g, "use_muon": False, "lr": config.lr} for g in adamw_groups]
    return Muon(
        groups,
        lr=config.muon_lr,
        momentum=config.muon_momentum,
        nesterov=config.muon_nesterov,
        weight_decay=config.muon_weight_decay,
        ns_steps=config.muon_ns_steps,
        scale=config.muon_scale,
        ns_dtype=NS_DTYPES[config.muon_ns_dtype],
        sharded=config.muon_sharded,
        betas=config.betas,
        eps=config.eps,
    )


def routing_summary(routes: list[Route]) -> str:
    """A table for the start of a run: per optimizer and role, how many tensors
    and parameters, the decay, and a few example names."""
    rows: dict[tuple[str, str, float], list[Route]] = {}
    for r in routes:
        rows.setdefault((r.optimizer, r.role, r.weight_decay), []).append(r)
    total = sum(r.param.numel() for r in routes)
    lines = [
        f"{'optimizer':<9} {'role':<9} {'tensors':>7} {'params':>13} {'share':>6}  {'wd':<6} e.g."
    ]
    for (opt, role, wd), rs in sorted(rows.items()):
        n = sum(r.param.numel() for r in rs)
        example = ", ".join(r.name for r in rs[:2]) + (", ..." if len(rs) > 2 else "")
        lines.append(
            f"{opt:<9} {role:<9} {len(rs):>7} {n:>13,} {n / total:>6.1%}  {wd:<6g} {example}"
        )
    return "\n".join(lines)
