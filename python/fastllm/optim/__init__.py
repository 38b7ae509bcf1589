"""Optimizers: Muon for hidden matrices, AdamW for the rest, LR schedules.

>>> from fastllm.optim import OptimConfig, build_optimizer, routing_summary, route_parameters
>>> opt = build_optimizer(model, OptimConfig(name="muon"))
"""

from fastllm.optim.muon import (
    NS_COEFFICIENTS,
    SCALES,
    Muon,
    default_ns_dtype,
    newton_schulz,
    update_scale,
)
from fastllm.optim.routing import (
    OptimConfig,
    Route,
    build_optimizer,
    route_parameters,
    routing_summary,
)
from fastllm.optim.schedule import (
    ScheduleConfig,
    WarmupCosine,
    WarmupLinear,
    WarmupStableDecay,
    build_scheduler,
)

__all__ = [
    "NS_COEFFICIENTS",
    "SCALES",
    "Muon",
    "OptimConfig",
    "Route",
    "ScheduleConfig",
    "WarmupCosine",
    "WarmupLinear",
    "WarmupStableDecay",
    "build_optimizer",
    "build_scheduler",
    "default_ns_dtype",
    "newton_schulz",
    "route_parameters",
    "routing_summary",
    "update_scale",
]
