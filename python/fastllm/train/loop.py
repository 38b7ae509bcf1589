"""The training loop: ``Trainer(config, train_data, val_data).fit()``.

One optimizer step reads ``grad_accum`` micro-batches on each data-parallel
rank, lets the objective decide their targets, counts the step's target
tokens over every micro-batch and rank, then runs each micro-batch forward
under autocast and backward through the engine (gradients reduced over
replicas on the last one only), clips the global gradient norm, asks the
spike guard, and steps (or skips). Each micro-batch's loss is its *summed*
loss divided by the step's global target-token count, so the gradient is the
one of the whole global batch whatever its split over ranks and micro-batches.

The seams: ``parallel.parallelize`` wraps the model, the mesh gives the data
its data-parallel rank, the :class:`~fastllm.train.objectives.Objective`
says what the loss is, and the :class:`~fastllm.train.engine.Engine` owns
backward, the optimizer step and checkpoints (``parallel.backend =
"deepspeed"``: a DeepSpeed engine behind the same interface).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastllm.config import ConfigError
from fastllm.io.atomic import write_bytes_atomic, write_text_atomic
from fastllm.model.plan import H100_BF16_TFLOPS, flops_per_token
from fastllm.optim import route_parameters, routing_summary
from fastllm.parallel import (
    Mesh,
    build_mesh,
    parallelize,
    setup,
    sharded_optimizer,
    uses_loss_parallel,
)
from fastllm.train import checkpoint as ckpt
from fastllm.train.config import TrainConfig
from fastllm.train.data import DataSource, DataSpec, resolve
from fastllm.train.engine import Engine, PipelineEngine
from fastllm.train.guard import SpikeGuard
from fastllm.train.metrics import MetricsWriter, plot_loss_curve, read_records
from fastllm.train.objectives import Objective

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_generator(seed: int, step: int, dp_rank: int, micro: int) -> torch.Generator:
    """The generator of one micro-batch's random targets: a function of where
    it is in the run, so a resumed run draws what the uninterrupted one did."""
    state = np.random.SeedSequence([seed, step, dp_rank, micro]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class Trainer:
    """Builds the model, optimizer, schedule and data of ``config`` and trains.

    ``train_data`` / ``val_data``: a :class:`~fastllm.train.data.Batches`, or a
    factory called with this rank's :class:`~fastllm.train.data.DataSpec`.
    With ``train.resume`` the newest checkpoint under ``out_dir`` is loaded.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_data: DataSource,
        val_data: DataSource | None = None,
        *,
        tokenizer_path: str | Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        c = config.train
        info = setup(c.device, c.dist_timeout_s, group_of_one=config.parallel.fsdp_one_process)
        self.mesh: Mesh = build_mesh(info, config.parallel)
        self.dist = self.mesh.info
        self.device = self.mesh.device
        self.log = log if self.mesh.is_main else (lambda _msg: None)
        self.out_dir = Path(c.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        seed_everything(c.seed)

        self.model = config.model.build(self.device)
        self.objective: Objective = config.objective.build(config)
        # Counted before any wrapper: ZeRO-3 leaves empty placeholders in the model.
        n_params = self.model.num_params()
        routing = routing_summary(route_parameters(self.model, config.optim))
        # Wrap first: FSDP2 and TP replace the parameters the optimizer must hold.
        module = parallelize(self.model, config, self.mesh)
        optimizer = config.optim.build(self.model)
        kind, extra = (
            (PipelineEngine, {"config": config}) if self.mesh.pp_size > 1 else (Engine, {})
        )
        if config.parallel.backend == "deepspeed":
            from fastllm.parallel.deepspeed import DeepSpeedEngine

            kind, extra = DeepSpeedEngine, {"config": config}
        self.engine = kind(
            self.model,
            module,
            optimizer,
            config.schedule.build(optimizer, c.steps),
            fp16=c.dtype == "fp16",
            device=self.device,
            autocast=self._autocast,
            mesh=self.mesh,
            zero_one=sharded_optimizer(self.model, config, self.mesh),
            loss_parallel=uses_loss_parallel(config, self.mesh),
            **extra,
        )
        self.optimizer = optimizer
        self.guard = SpikeGuard(
            c.spike_factor, c.spike_window, c.spike_min_history, c.spike_norm_factor
        )
        self.step = 0

        dp = self.mesh.dp_size
        self.micro_batch = c.micro_batch(dp)
        chunks = config.parallel.microbatches
        if self.mesh.pp_size > 1 and self.micro_batch % chunks:
            raise ConfigError(
                "parallel.pp_microbatches",
                f"{chunks} does not divide the micro-batch of {self.micro_batch} sequences "
                f"(train.batch / (data parallel × train.grad_accum))",
            )
        spec = DataSpec(self.micro_batch, c.seq, self.mesh.dp_rank, dp, c.seed)
        self.train_data = resolve(train_data, spec)
        self._train_iter = iter(self.train_data)
        self.val_data = resolve(val_data, spec) if val_data is not None else None
        self._val_start = self.val_data.state_dict() if self.val_data is not None else None

        self.flops_per_token = flops_per_token(config.model, c.seq)["total"]
        peak = c.peak_tflops or (H100_BF16_TFLOPS if self.device.type == "cuda" else 0.0)
        self.peak_flops = peak * 1e12 * self.dist.world_size
        self.metrics = MetricsWriter(self.out_dir, self.dist.is_main, c.tensorboard)
        self.history: list[dict[str, Any]] = []

        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out_dir / "config.json", config.to_json())
            if tokenizer_path is not None:
                write_bytes_atomic(self.out_dir / "tokenizer.json", Path(tokenizer_path).read_bytes())
        self.log(
            f"model: {n_params:,} parameters; world {self.dist.world_size} "
            f"(data parallel {dp}), objective {config.objective.name}, "
            f"micro-batch {self.micro_batch} × {c.seq}, grad_accum {c.grad_accum}, "
            f"{c.batch * c.seq:,} tokens/step, {c.dtype} on {self.device}"
        )
        self.log(routing)
        found = ckpt.latest(self.ckpt_root) if c.resume else None
        if found is not None:
            self.load(found)

    # ---- one step ----------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = AUTOCAST.get(self.config.train.dtype)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self) -> dict[str, Any]:
        """One optimizer step (or a skipped one); returns its metrics."""
        c = self.config.train
        t0 = time.perf_counter()
        raw = list(islice(self._train_iter, c.grad_accum))
        if len(raw) < c.grad_accum:
            raise RuntimeError(f"training data ran out at step {self.step}")
        batches = [
            self.objective.prepare(
                self._to_device(b), step_generator(c.seed, self.step, self.mesh.dp_rank, i)
            )
            for i, b in enumerate(raw)
        ]
        # The step's target tokens over every micro-batch and data-parallel rank,
        # counted before any forward: each micro-batch's summed loss is divided by it.
        count = torch.stack([self.objective.targets(b) for b in batches]).sum().double()
        n_global = float(self.mesh.all_reduce_dp(count.reshape(1)).item())
        # DDP averages gradients over the replicas; multiplying by their number
        # turns that average back into the sum the global normalization needs.
        scale = self.mesh.dp_size / max(n_global, 1.0)
        engine = self.engine
        sums: dict[str, torch.Tensor] = {}
        engine.zero_grad()
        for i, batch in enumerate(batches):
            metrics = engine.micro_step(self.objective, batch, scale, sync=i == len(batches) - 1)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0) + v.double()
        names = sorted(sums)
        reduced = engine.reduce_metrics(torch.stack([sums[k] for k in names]).to(self.device))
        reduced = self.mesh.all_reduce_dp(reduced)
        values = {k: float(v) / max(n_global, 1.0) for k, v in zip(names, reduced, strict=True)}
        loss_value = values.pop("loss")

        grad_norm = engine.clip_grad_norm(c.clip)
        lr = engine.lr
        reason = self.guard.check(loss_value, grad_norm)
        if reason == "nonfinite_grad_norm" and engine.scaler.is_enabled():
            reason = "fp16_overflow"  # the loss scaler lowers its scale and the run goes on
        engine.step(apply=reason is None)
        if reason is None:
            self.guard.accept(loss_value, grad_norm)
        else:
            self.guard.skip(reason)
            self.log(
                f"step {self.step + 1}: update skipped ({reason}: loss {loss_value:.4g}, "
                f"grad norm {grad_norm:.4g}); {self.guard.skips} skipped so far"
            )
        self.step += 1
        dt = time.perf_counter() - t0
        tokens = c.batch * c.seq
        record: dict[str, Any] = {
            "step": self.step,
            "loss": loss_value,
            "grad_norm": grad_norm,
            "lr": lr,
            "tokens": self.step * tokens,
            "tokens_per_s": tokens / dt,
            "step_s": dt,
            "skipped": reason is not None,
            "skips": self.guard.skips,
        }
        record.update(values)
        if self.peak_flops:
            record["mfu"] = tokens * self.flops_per_token / dt / self.peak_flops
        if c.dtype == "fp16":
            record["loss_scale"] = engine.loss_scale
        return record

    # ---- evaluation ----------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss and perplexity over the first ``eval_batches``
        micro-batches of the validation data on each rank (the same ones every time)."""
        if self.val_data is None:
            return {}
        self.val_data.load_state_dict(self._val_start)
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        was_training = self.model.training
        self.model.eval()
        for batch in islice(iter(self.val_data), self.config.train.eval_batches):
            sums += self.engine.eval_sums(self._to_device(batch))
        self.model.train(was_training)
        self.mesh.all_reduce_dp(sums)
        val = float(sums[0] / sums[1].clamp(min=1))
        return {"val_loss": val, "val_ppl": math.exp(min(val, 700.0))}

    # ---- the loop -------------------------------------------------------------
    def fit(self, until: int | None = None) -> list[dict[str, Any]]:
        """Train to step ``until`` (default: ``train.steps``); returns the records
        of the steps taken in this call."""
        c = self.config.train
        end = c.steps if until is None else min(until, c.steps)
        records: list[dict[str, Any]] = []
        bar = None
        if self.dist.is_main and c.progress and self.step < end:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc="train", dynamic_ncols=True)
        self.model.train()
        while self.step < end:
            record = self.train_step()
            if (c.eval_every and self.step % c.eval_every == 0) or self.step == c.steps:
                record.update(self.evaluate())
            records.append(record)
            self.history.append(record)
            if self.step % c.log_every == 0 or "val_loss" in record or self.step == end:
                self.metrics.write(record)
            if bar is not None:
                post = {"loss": f"{record['loss']:.3f}", "tok/s": f"{record['tokens_per_s']:,.0f}"}
                if "mfu" in record:
                    post["mfu"] = f"{record['mfu']:.1%}"
                if "val_loss" in record:
                    post["val"] = f"{record['val_loss']:.3f}"
                if self.guard.skips:
                    post["skips"] = self.guard.skips
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if (c.ckpt_every and self.step % c.ckpt_every == 0) or self.step == c.steps:
                path = self.save()
                self.log(f"saved checkpoint {path}")
        if bar is not None:
            bar.close()
        if self.step >= c.steps and self.dist.is_main:
            self.finish()
        return records

    def finish(self) -> None:
        """The end of a run: the loss-curve PNG from the whole metrics file."""
        png = plot_loss_curve(
            read_records(self.metrics.path), self.out_dir / "loss.png", f"{self.out_dir.name}"
        )
        if png is not None:
            self.log(f"loss curve: {png}")
        self.metrics.close()

    # ---- checkpoints ---------------------------------------------------------
    def save(self) -> Path:
        train_state = {
            "step": self.step,
            "engine": self.engine.state_dict(),
            "guard": self.guard.state_dict(),
        }
        rank_state = {"rng": ckpt.rng_state(), "data": self.train_data.state_dict()}
        return self.engine.save_checkpoint(
            self.ckpt_root,
            self.step,
            train_state,
            rank_state,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            config_json=self.config.to_json(),
            keep=self.config.train.keep_checkpoints,
        )

    def load(self, path: str | Path) -> None:
        path = ckpt.resolve(path)
        train_state, rank_state = self.engine.load_checkpoint(path, rank=self.dist.rank)
        self.step = int(train_state["step"])
        self.engine.load_state_dict(train_state["engine"])
        self.guard.load_state_dict(train_state["guard"])
        self.train_data.load_state_dict(rank_state["data"])
        self._train_iter = iter(self.train_data)
        ckpt.set_rng_state(rank_state["rng"])
        self.metrics.truncate_after(self.step)
        self.log(f"resumed from {path} at step {self.step}")
