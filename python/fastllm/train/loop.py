"""The training loop: ``Trainer(config, train_data, val_data).fit()``.

One optimizer step reads ``grad_accum`` micro-batches on each rank, runs them
forward under autocast and backward (DDP syncs gradients on the last one
only), clips the global gradient norm, asks the spike guard, then steps the
optimizer (or skips), the loss scaler and the schedule. The loss is the mean
over every label token of the global batch, whatever the split over ranks and
micro-batches, so a run's losses do not depend on the world size or on
``grad_accum`` beyond float rounding.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from fastllm.model import Decoder
from fastllm.model.plan import H100_BF16_TFLOPS, flops_per_token
from fastllm.optim import build_optimizer, build_scheduler, route_parameters, routing_summary
from fastllm.train import checkpoint as ckpt
from fastllm.train.config import TrainConfig
from fastllm.train.data import DataSource, DataSpec, resolve
from fastllm.train.distributed import DistInfo, all_reduce_sum, setup
from fastllm.train.guard import SpikeGuard
from fastllm.train.metrics import MetricsWriter, plot_loss_curve, read_records

IGNORE = -100
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_activation_checkpointing(model: Decoder) -> None:
    """Recompute each block in backward (``torch.utils.checkpoint``), applied from
    outside the model: the block's ``forward`` is wrapped on the instance, so
    parameter names and state dicts stay as they are."""
    for block in model.layers.values():
        inner = block.forward

        def forward(*args: Any, _inner: Callable = inner, **kwargs: Any) -> torch.Tensor:
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward


def loss_sums(
    logits: torch.Tensor, labels: torch.Tensor, z_loss: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and summed z-loss term logsumexp(logits)² (zero
    unless ``z_loss``) over the label tokens, in float32."""
    flat = logits.flatten(0, 1).float()
    target = labels.flatten()
    ce = F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum")
    if not z_loss:
        return ce, torch.zeros((), device=ce.device)
    valid = target != IGNORE
    z = (flat.logsumexp(-1).square() * valid).sum()
    return ce, z


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
        self.dist: DistInfo = setup(c.device, c.dist_timeout_s)
        self.device = self.dist.device
        self.log = log if self.dist.is_main else (lambda _msg: None)
        self.out_dir = Path(c.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        seed_everything(c.seed)

        self.model = Decoder(config.model).to(self.device)
        if c.activation_checkpointing:
            apply_activation_checkpointing(self.model)
        net: nn.Module = self.model
        if self.dist.distributed:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if c.compile:
            net = torch.compile(net)
        self.net = net
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, c.steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=c.dtype == "fp16")
        self.guard = SpikeGuard(
            c.spike_factor, c.spike_window, c.spike_min_history, c.spike_norm_factor
        )
        self.step = 0

        self.micro_batch = c.micro_batch(self.dist.world_size)
        spec = DataSpec(self.micro_batch, c.seq, self.dist.rank, self.dist.world_size, c.seed)
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
            ckpt.write_atomic(self.out_dir / "config.json", config.to_json())
            if tokenizer_path is not None:
                shutil.copyfile(tokenizer_path, self.out_dir / "tokenizer.json")
        self.log(
            f"model: {self.model.num_params():,} parameters; world {self.dist.world_size}, "
            f"micro-batch {self.micro_batch} × {c.seq}, grad_accum {c.grad_accum}, "
            f"{c.batch * c.seq:,} tokens/step, {c.dtype} on {self.device}"
        )
        self.log(routing_summary(route_parameters(self.model, config.optim)))
        found = ckpt.latest(self.ckpt_root) if c.resume else None
        if found is not None:
            self.load(found)

    # ---- one step ----------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = AUTOCAST.get(self.config.train.dtype)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pos = batch.get("position_ids")
        with self._autocast():
            return net(
                batch["input_ids"].to(self.device, non_blocking=True),
                position_ids=None if pos is None else pos.to(self.device, non_blocking=True),
            )

    def train_step(self) -> dict[str, Any]:
        """One optimizer step (or a skipped one); returns its metrics."""
        c = self.config.train
        t0 = time.perf_counter()
        batches = list(islice(self._train_iter, c.grad_accum))
        if len(batches) < c.grad_accum:
            raise RuntimeError(f"training data ran out at step {self.step}")
        # Normalize by the label tokens of the whole global batch, counted up front,
        # so every token weighs the same whatever the split over ranks and micro-batches.
        n_tokens = torch.tensor(
            [float(sum(int((b["labels"] != IGNORE).sum()) for b in batches))], dtype=torch.float64
        )
        n_global = float(all_reduce_sum(n_tokens.to(self.device)).item())
        scale = self.dist.world_size / max(n_global, 1.0)  # DDP averages gradients over ranks
        ddp = self.dist.distributed
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or not ddp else self._no_sync()
            with sync:
                logits = self._forward(self.net, batch)
                labels = batch["labels"].to(self.device, non_blocking=True)
                ce, z = loss_sums(logits, labels, z_loss=c.z_loss > 0)
                loss = (ce + c.z_loss * z) * scale if c.z_loss else ce * scale
                self.scaler.scale(loss).backward()
            sums += torch.stack([ce.detach(), z.detach()]).double()
        all_reduce_sum(sums)
        loss_value = float(sums[0].item()) / max(n_global, 1.0)
        z_value = float(sums[1].item()) / max(n_global, 1.0)

        self.scaler.unscale_(self.optimizer)
        grad_norm = float(
            nn.utils.clip_grad_norm_(self.model.parameters(), c.clip if c.clip > 0 else math.inf)
        )
        lr = self.scheduler.get_last_lr()[0]
        reason = self.guard.check(loss_value, grad_norm)
        if reason == "nonfinite_grad_norm" and self.scaler.is_enabled():
            reason = "fp16_overflow"  # the loss scaler lowers its scale and the run goes on
        if reason is None:
            self.scaler.step(self.optimizer)
            self.guard.accept(loss_value, grad_norm)
        else:
            self.guard.skip(reason)
            self.optimizer.zero_grad(set_to_none=True)
            self.log(
                f"step {self.step + 1}: update skipped ({reason}: loss {loss_value:.4g}, "
                f"grad norm {grad_norm:.4g}); {self.guard.skips} skipped so far"
            )
        self.scaler.update()
        self.scheduler.step()
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
        if c.z_loss:
            record["z_loss"] = z_value
        if self.peak_flops:
            record["mfu"] = tokens * self.flops_per_token / dt / self.peak_flops
        if c.dtype == "fp16":
            record["loss_scale"] = float(self.scaler.get_scale())
        return record

    def _no_sync(self) -> contextlib.AbstractContextManager:
        ddp = self.net
        while not isinstance(ddp, nn.parallel.DistributedDataParallel):
            ddp = ddp._orig_mod  # torch.compile's wrapper
        return ddp.no_sync()

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
            logits = self._forward(self.model, batch)
            labels = batch["labels"].to(self.device)
            ce, _ = loss_sums(logits, labels, z_loss=False)
            sums += torch.stack([ce.double(), (labels != IGNORE).sum().double()])
        self.model.train(was_training)
        all_reduce_sum(sums)
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
            "scheduler": self.scheduler.state_dict(),
            "guard": self.guard.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        rank_state = {"rng": ckpt.rng_state(), "data": self.train_data.state_dict()}
        return ckpt.save(
            self.ckpt_root,
            self.step,
            self.model,
            self.optimizer,
            train_state,
            rank_state,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            config_json=self.config.to_json(),
            keep=self.config.train.keep_checkpoints,
        )

    def load(self, path: str | Path) -> None:
        path = ckpt.resolve(path)
        train_state, rank_state = ckpt.load(path, self.model, self.optimizer, rank=self.dist.rank)
        self.step = int(train_state["step"])
        self.scheduler.load_state_dict(train_state["scheduler"])
        self.guard.load_state_dict(train_state["guard"])
        self.scaler.load_state_dict(train_state["scaler"])
        self.train_data.load_state_dict(rank_state["data"])
        self._train_iter = iter(self.train_data)
        ckpt.set_rng_state(rank_state["rng"])
        self.metrics.truncate_after(self.step)
        self.log(f"resumed from {path} at step {self.step}")
