"""The DeepSpeed backend (``parallel.backend = "deepspeed"``): ZeRO by a DeepSpeed engine.

The model, objective, optimizer and schedule are the ones the torch backend
trains; only data parallelism changes hands. ``parallelize`` leaves the model
unwrapped, and :class:`DeepSpeedEngine` takes the train engine's place
(:mod:`fastllm.train.engine`): it hands the model and our optimizer
(``config.optim.build``, AdamW groups and weight-decay routing as always) to
``deepspeed.initialize`` as a client optimizer, steps our LR schedule itself,
and runs each micro-batch's forward and backward through the DeepSpeed engine.

- The DeepSpeed JSON is generated from our config by :func:`deepspeed_config`
  (batch, accumulation, clipping, ZeRO stage, CPU offload, bf16/fp16) and
  written to ``<out_dir>/deepspeed.json``. ``parallel.deepspeed_config`` names
  a JSON of your own to start from: the keys we generate must be absent from
  it (or ``"auto"``) or agree with our config, else it is a config error
  naming the key; every other key (bucket sizes, ``overlap_comm``, ...) is
  DeepSpeed's to read. It may not hold ``optimizer`` or ``scheduler``: those
  are ``[optim]`` and ``[schedule]``.
- Loss: the loop divides each micro-batch's summed loss by the step's global
  target tokens and multiplies by the data-parallel size, since replicas
  average gradients. DeepSpeed averages over its data-parallel ranks too, so
  the backward runs with ``scale_wrt_gas=False`` (DeepSpeed would otherwise
  divide again by ``gradient_accumulation_steps``): the gradient is the
  one-process gradient of the global batch.
- Clipping happens inside DeepSpeed's step (``gradient_clipping`` =
  ``train.clip``). The spike guard needs the norm before the step, so
  :meth:`~DeepSpeedEngine.clip_grad_norm` asks the ZeRO optimizer for the
  global norm of its reduced gradients, the number its step clips by (and
  later reports as ``get_global_grad_norm()``).
- A skipped update (``step(apply=False)``) still runs DeepSpeed's step, so its
  gradient partitions are reduced, cleared and counted as usual, but with the
  client optimizer's ``step`` suppressed for that call: parameters, fp32
  master weights and Adam moments stay exactly as they were, as under the
  torch engine. An fp16 overflow is skipped by DeepSpeed itself.
- Checkpoints (:meth:`~DeepSpeedEngine.save_checkpoint`): the full fp32
  weights, gathered from the ZeRO partitions, go into the checkpoint's DCP
  ``model`` (so ``fastllm.train.checkpoint.load_model`` reads them on one
  process, like any of our checkpoints), and DeepSpeed's own
  ``save_checkpoint`` writes its optimizer shards into ``deepspeed/`` in the
  same folder, committed with it by one rename. Resuming needs the same
  backend, ZeRO stage and world size (DeepSpeed's shards are per rank).

On a CPU, DeepSpeed JIT-compiles a shared-memory all-reduce at every start
(~25 s) that only its inference kernels call; training collectives go through
the torch process group (gloo), so the op is marked unavailable before the
engine starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fastllm.config import ConfigError
from fastllm.io.atomic import write_json_atomic
from fastllm.train import checkpoint as ckpt
from fastllm.train.engine import Engine

NATIVE = "deepspeed"  # the folder of DeepSpeed's own checkpoint inside ours

# The keys generated from our config, each with the field(s) it comes from.
GENERATED = {
    "train_batch_size": "train.batch",
    "train_micro_batch_size_per_gpu": "train.batch / (world size × train.grad_accum)",
    "gradient_accumulation_steps": "train.grad_accum",
    "gradient_clipping": "train.clip",
    "zero_optimization.stage": "parallel.zero",
    "zero_optimization.offload_optimizer.device": "parallel.offload_optimizer",
    "zero_optimization.offload_param.device": "parallel.offload_param",
    "bf16.enabled": "train.dtype",
    "fp16.enabled": "train.dtype",
}


def deepspeed_config(config: Any, dp_size: int, device_type: str = "cpu") -> dict[str, Any]:
    """The DeepSpeed JSON of ``config`` (a ``TrainConfig``) on ``dp_size``
    data-parallel ranks: generated, or the user's ``parallel.deepspeed_config``
    checked against it and completed by it."""
    c, p = config.train, config.parallel
    pin = device_type == "cuda"  # pinned host memory needs a GPU
    zero: dict[str, Any] = {"stage": p.zero}
    if p.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": pin}
    if p.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": pin}
    ours: dict[str, Any] = {
        "train_batch_size": c.batch,
        "train_micro_batch_size_per_gpu": c.micro_batch(dp_size),
        "gradient_accumulation_steps": c.grad_accum,
        "gradient_clipping": c.clip,
        "zero_optimization": zero,
        "bf16": {"enabled": c.dtype == "bf16"},
        "fp16": {"enabled": c.dtype == "fp16"},
        # The optimizer is ours, a torch optimizer DeepSpeed calls "untested",
        # and it stays ours under offload (not DeepSpeedCPUAdam, a JIT-built op).
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": None,  # our metrics report progress
        "wall_clock_breakdown": False,
    }
    if not p.deepspeed_config:
        return ours
    path = Path(p.deepspeed_config)
    field = "parallel.deepspeed_config"
    try:
        user = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(field, f"cannot read {str(path)!r}: {e}") from None
    if not isinstance(user, dict):
        raise ConfigError(field, f"{str(path)!r} holds a JSON {type(user).__name__}, not an object")
    return merge(user, ours, str(path))


def merge(user: dict[str, Any], ours: dict[str, Any], source: str) -> dict[str, Any]:
    """``user``'s DeepSpeed JSON completed by ``ours``. A key both set (other
    than to ``"auto"``) must agree; ``optimizer`` and ``scheduler`` are refused."""
    field = "parallel.deepspeed_config"
    for key, where in (("optimizer", "[optim]"), ("scheduler", "[schedule]")):
        if key in user:
            raise ConfigError(
                field, f"{source} sets {key!r}: ours is {where}, passed to DeepSpeed; remove it"
            )
    for key, origin in GENERATED.items():
        theirs = _get(user, key)
        if theirs is None or theirs == "auto":
            continue
        mine = _get(ours, key)
        if key.endswith(".device"):
            # Our knob says whether to offload; the user's JSON may say where (cpu, nvme).
            agree = (theirs != "none") == (mine is not None)
        elif isinstance(mine, bool) or mine is None:
            agree = bool(theirs) == bool(mine)
        else:
            agree = isinstance(theirs, int | float) and float(theirs) == float(mine)
        if not agree:
            raise ConfigError(
                field,
                f"{source} sets {key} = {json.dumps(theirs)}, but {origin} gives "
                f"{json.dumps(mine if mine is not None else 'none')}: set it in one place",
            )
    return _deep_update(json.loads(json.dumps(ours)), user)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        elif v != "auto" or k not in base:
            base[k] = v
    return base


def _skip_shm_comm_build() -> None:
    """DeepSpeed builds its shared-memory all-reduce (``deepspeed_shm_comm``, a
    ~25 s JIT compile on every start) whenever its comm layer starts on a CPU;
    only its inference all-reduce uses it. Marking it unavailable (the table
    DeepSpeed keeps of compatible ops) leaves training on torch's gloo."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _ensure_process_group(device: torch.device) -> None:
    """DeepSpeed needs a process group and ``LOCAL_RANK`` even on one process:
    a one-member group in memory (no ports) when the run has none."""
    os.environ.setdefault("LOCAL_RANK", "0")
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            store=dist.HashStore(),
            rank=0,
            world_size=1,
        )


@contextlib.contextmanager
def _suppressed_step(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """``optimizer.step()`` does nothing inside the block (an instance attribute
    shadows the method; what was there before is put back)."""
    before = optimizer.__dict__.get("step")
    optimizer.step = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        if before is None:
            del optimizer.step
        else:
            optimizer.step = before  # type: ignore[method-assign]


class DeepSpeedEngine(Engine):
    """The train engine over ``deepspeed.initialize(model, optimizer, config)``.

    ``module`` becomes the DeepSpeed engine (forward runs through it);
    ``model`` stays the bare model (its parameters are ZeRO's, partitioned at
    stage 3: read them through :func:`full_state_dict`)."""

    def __init__(self, *args: Any, config: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import deepspeed

        device = torch.device(self.mesh.device if self.mesh is not None else "cpu")
        dp = self.mesh.dp_size if self.mesh is not None else 1
        self.stage = config.parallel.zero
        self.clip = config.train.clip
        self.ds_config = deepspeed_config(config, dp, device.type)
        if self.mesh is None or self.mesh.is_main:
            write_json_atomic(Path(config.train.out_dir) / "deepspeed.json", self.ds_config)
        if device.type == "cpu":
            _skip_shm_comm_build()
        _ensure_process_group(device)
        # DeepSpeed's bf16 casts the whole module, buffers included; the RoPE
        # tables stay float32 (apply_rope computes in float32).
        buffers = {name: b for name, b in self.model.named_buffers()}
        engine, *_ = deepspeed.initialize(
            model=self.model,
            optimizer=self.optimizer,
            config=self.ds_config,
            dist_init_required=False,
        )
        for name, b in buffers.items():
            owner, _, leaf = name.rpartition(".")
            mod = self.model.get_submodule(owner) if owner else self.model
            if mod._buffers[leaf] is not None and mod._buffers[leaf].dtype != b.dtype:
                mod._buffers[leaf] = b.to(mod._buffers[leaf].device)
        self.ds = engine
        self.module = engine
        self.world_size = dist.get_world_size()

    # ---- one step -----------------------------------------------------------
    def zero_grad(self) -> None:
        """Nothing: DeepSpeed clears its gradient partitions in its step (taken or skipped)."""

    def micro_step(
        self, objective: Any, batch: dict[str, torch.Tensor], scale: float, sync: bool
    ) -> dict[str, torch.Tensor]:
        # The step's last micro-batch is DeepSpeed's accumulation boundary
        # (gradients reduced and partitioned there at ZeRO-1; every time at 2 and 3).
        self.ds.set_gradient_accumulation_boundary(sync)
        with self.autocast():
            out = objective(self.module, batch)
        self.ds.backward(out.loss * scale, scale_wrt_gas=False)
        return out.metrics

    def clip_grad_norm(self, max_norm: float) -> float:
        """The global gradient norm DeepSpeed's step will clip by (to
        ``train.clip``, set in its config); the clipping itself is in the step."""
        if max_norm != self.clip:
            raise ValueError(f"DeepSpeed clips to {self.clip} (its config), not {max_norm}")
        opt = self.ds.optimizer
        if self.stage == 3:
            groups = opt._get_norm_groups()
        else:
            groups = [opt.scaled_global_norm()]
        norms = torch.stack([torch.as_tensor(n, dtype=torch.float64).cpu() for n in groups])
        if not bool(torch.isfinite(norms).all()) or bool((norms < 0).any()):
            return math.inf  # DeepSpeed's helpers report inf/nan as -1
        return float(norms.square().sum().sqrt()) / self.loss_scale

    def step(self, apply: bool = True) -> None:
        """DeepSpeed's step (reduce, clip, update, clear gradients); when not
        ``apply``, with our optimizer's update suppressed. The schedule advances."""
        if apply:
            self.ds.step()
        else:
            with _suppressed_step(self.optimizer):
                self.ds.step()
        self.scheduler.step()

    @property
    def loss_scale(self) -> float:
        return float(self.ds.optimizer.loss_scale) if self.ds.fp16_enabled() else 1.0

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["deepspeed"] = {"zero": self.stage, "world_size": self.world_size}
        return state

    # ---- checkpoints ----------------------------------------------------------
    def save_checkpoint(
        self, root: str | Path, step: int, train_state: dict, rank_state: dict, **kwargs: Any
    ) -> Path:
        """Our checkpoint with the full fp32 weights as its DCP model, no
        optimizer tensors, and DeepSpeed's checkpoint in ``deepspeed/``."""
        weights = full_state_dict(self.model)

        def native(folder: Path) -> None:
            self.ds.save_checkpoint(str(folder), tag=NATIVE, save_latest=False)

        return ckpt.save(
            root,
            step,
            self.model,
            self.optimizer,
            train_state,
            rank_state,
            states=(weights, {}),
            native=(NATIVE, native),
            **kwargs,
        )

    def load_checkpoint(self, path: str | Path, rank: int = 0) -> tuple[dict, dict]:
        path = ckpt.resolve(path)
        shared, rank_state = ckpt.read_state(path, rank)
        train_state = ckpt.decode(shared["train"], {})
        saved = train_state.get("engine", {}).get("deepspeed")
        here = {"zero": self.stage, "world_size": self.world_size}
        if shared.get("native") != NATIVE or saved is None:
            raise ValueError(
                f"{path} was not written by the deepspeed backend: resume it with "
                "parallel.backend = 'torch' (its weights load with load_model)"
            )
        if saved != here:
            raise ValueError(
                f"{path} holds DeepSpeed ZeRO-{saved['zero']} shards of {saved['world_size']} "
                f"ranks; this run is ZeRO-{self.stage} on {self.world_size}: resume with that "
                "layout (the weights alone load with fastllm.train.checkpoint.load_model)"
            )
        self.ds.load_checkpoint(
            str(path), tag=NATIVE, load_optimizer_states=True, load_lr_scheduler_states=False
        )
        return train_state, rank_state


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every parameter's full fp32 value (its ZeRO
    master copy, gathered from the partitions: a collective), on rank 0; other
    ranks get an empty dict (the checkpoint's DCP save takes rank 0's)."""
    from deepspeed.utils import safe_get_full_fp32_param

    main = not dist.is_initialized() or dist.get_rank() == 0
    params = dict(model.named_parameters(remove_duplicate=False))
    gathered: dict[int, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict(keep_vars=True).items():
        p = params.get(name)
        if p is None:  # a persistent buffer: not partitioned
            full = value.detach()
        elif id(p) in gathered:  # a tied weight: gathered once
            full = gathered[id(p)]
        else:
            full = safe_get_full_fp32_param(p)
            if full is None:  # not managed by ZeRO (frozen)
                full = p.detach().float()
            full = full.detach().cpu().clone() if main else full.new_empty(0)
            gathered[id(p)] = full
        if main:
            out[name] = full.cpu()
    return out
