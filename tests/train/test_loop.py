"""The loop: it learns, accumulation equals the big batch, clipping, the spike
guard, activation checkpointing, z-loss, bf16 and fp16 autocast, Muon."""

from __future__ import annotations

import math

import pytest
import torch

from fastllm.train import SpikeGuard, Trainer
from fastllm.train.metrics import read_records

from .helpers import config, data


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_loop_reduces_loss_and_evaluates(tmp_path):
    cfg = config(tmp_path, train={"steps": 24, "eval_every": 12, "batch": 8})
    train, val = data()
    trainer = Trainer(cfg, train, val, log=lambda _: None)
    records = trainer.fit()
    assert [r["step"] for r in records] == list(range(1, 25))
    assert records[0]["loss"] > 3.8  # ≈ ln 64 = 4.16 at init
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [12, 24]
    assert evals[1]["val_loss"] < evals[0]["val_loss"]
    assert evals[1]["val_ppl"] == pytest.approx(math.exp(evals[1]["val_loss"]))
    written = read_records(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in written] == list(range(1, 25))
    assert (tmp_path / "checkpoints" / "latest").is_file()


@pytest.mark.parametrize("accum", [2, 4])
def test_grad_accumulation_equals_the_big_batch(tmp_path, accum):
    train, _ = data()
    big = Trainer(config(tmp_path / "a", train={"batch": 8}), train, log=lambda _: None)
    acc = Trainer(
        config(tmp_path / "b", train={"batch": 8, "grad_accum": accum}), train, log=lambda _: None
    )
    assert acc.micro_batch == 8 // accum
    a, b = big.fit(), acc.fit()
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
    for k, v in _params(big).items():
        torch.testing.assert_close(_params(acc)[k], v, rtol=1e-4, atol=1e-5)


def _grad_norm(model: torch.nn.Module) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def test_clipping_scales_the_global_gradient_norm(tmp_path):
    train, _ = data()
    clipped = Trainer(config(tmp_path / "a", train={"clip": 0.05}), train, log=lambda _: None)
    record = clipped.train_step()
    assert record["grad_norm"] > 0.05  # the logged norm is the one before clipping
    assert _grad_norm(clipped.model) == pytest.approx(0.05, rel=1e-4)
    free = Trainer(config(tmp_path / "b", train={"clip": 0.0}), train, log=lambda _: None)
    record = free.train_step()
    assert _grad_norm(free.model) == pytest.approx(record["grad_norm"], rel=1e-5)


def test_spike_guard_skips_an_injected_inf(tmp_path):
    train, _ = data()
    trainer = Trainer(config(tmp_path, train={"steps": 6}), train, log=lambda _: None)
    trainer.fit(until=3)
    before = _params(trainer)
    adam_steps = {id(p): float(s["step"]) for p, s in trainer.optimizer.state.items()}
    # A real inf in the forward pass: the final norm's output at the next step.
    handle = trainer.model.norm.register_forward_hook(lambda m, i, out: out * math.inf)
    record = trainer.train_step()
    handle.remove()
    assert record["skipped"] and record["skips"] == 1
    assert not math.isfinite(record["loss"])
    assert trainer.guard.reasons == {"nonfinite_loss": 1}
    for k, v in _params(trainer).items():
        assert torch.equal(v, before[k]), k
    assert {id(p): float(s["step"]) for p, s in trainer.optimizer.state.items()} == adam_steps
    rest = trainer.fit()
    assert [r["step"] for r in rest] == [5, 6]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rest)
    assert trainer.engine.scheduler.last_epoch == 6  # the schedule moves on through a skip


def test_spike_guard_judges_outliers_against_the_running_median():
    guard = SpikeGuard(factor=3.0, window=5, min_history=3)
    assert guard.check(100.0, 1.0) is None  # no history yet: only non-finite is judged
    for loss in (2.0, 2.2, 1.9):
        assert guard.check(loss, 1.0) is None
        guard.accept(loss, 1.0)
    assert guard.check(6.5, 1.0) == "loss_spike"  # > 3 × median 2.0
    assert guard.check(5.9, 1.0) is None
    assert guard.check(2.0, 3.5) == "grad_norm_spike"
    assert guard.check(math.nan, 1.0) == "nonfinite_loss"
    assert guard.check(2.0, math.inf) == "nonfinite_grad_norm"
    restored = SpikeGuard(3.0, 5, 3)
    restored.load_state_dict(guard.state_dict())
    assert restored.check(6.5, 1.0) == "loss_spike"


@pytest.mark.parametrize("mode", ["full", "selective", True])
def test_activation_checkpointing_gives_the_same_training(tmp_path, mode):
    train, _ = data()
    plain = Trainer(config(tmp_path / "a", train={"steps": 4}), train, log=lambda _: None)
    ckpt = Trainer(
        config(tmp_path / "b", train={"steps": 4, "activation_checkpointing": mode}),
        train,
        log=lambda _: None,
    )
    assert list(plain.model.state_dict()) == list(ckpt.model.state_dict())
    for x, y in zip(plain.fit(), ckpt.fit(), strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-6)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-5)


def test_selective_checkpointing_keeps_matmuls_and_recomputes_the_rest():
    """Ops run by backward: full checkpointing redoes the blocks' matmuls,
    selective does not (it kept their outputs) but redoes the pointwise ops
    (the norms' rsqrt) that no checkpointing never redoes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from fastllm.model import Decoder
    from fastllm.parallel import apply_activation_checkpointing

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: dict[str, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            self.ops[name] = self.ops.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    backward = {}
    for mode in ("none", "selective", "full"):
        torch.manual_seed(0)
        model = Decoder(config("/tmp/unused").model)
        apply_activation_checkpointing(model, mode)
        loss = model(torch.randint(0, 64, (2, 16))).sum()
        with Count() as count:
            loss.backward()
        backward[mode] = count.ops
    mm = {m: ops.get("mm", 0) for m, ops in backward.items()}
    rsqrt = {m: ops.get("rsqrt", 0) for m, ops in backward.items()}
    assert mm["selective"] == mm["none"] < mm["full"], mm
    assert rsqrt["none"] < rsqrt["selective"] == rsqrt["full"], rsqrt


def test_z_loss_is_added_and_logged(tmp_path):
    train, _ = data()
    trainer = Trainer(config(tmp_path, train={"z_loss": 1e-2}), train, log=lambda _: None)
    record = trainer.train_step()
    # At init the logits are small, so logsumexp ≈ ln V.
    assert record["z_loss"] == pytest.approx(math.log(64) ** 2, rel=0.05)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mixed_precision_trains(tmp_path, dtype):
    train, _ = data()
    trainer = Trainer(
        config(tmp_path, train={"steps": 12, "dtype": dtype}), train, log=lambda _: None
    )
    records = trainer.fit()
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    if dtype == "fp16":
        assert records[-1]["loss_scale"] > 0


def test_muon_trains(tmp_path):
    train, _ = data()
    cfg = config(tmp_path, optim={"name": "muon", "muon_lr": 0.02}, train={"steps": 12})
    trainer = Trainer(cfg, train, log=lambda _: None)
    records = trainer.fit()
    assert trainer.optimizer.param_groups[0]["use_muon"]
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
