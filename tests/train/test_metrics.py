"""Metrics: JSONL records (rewritten on resume), TensorBoard events, the loss PNG, MFU."""

from __future__ import annotations

import importlib.util

import pytest

from fastllm.model.plan import flops_per_token
from fastllm.train import Trainer
from fastllm.train.metrics import MetricsWriter, plot_loss_curve, read_records

from .helpers import config, data


def test_jsonl_records_and_truncation(tmp_path):
    w = MetricsWriter(tmp_path, tensorboard=False)
    for step in range(1, 6):
        w.write({"step": step, "loss": 1.0 / step})
    w.truncate_after(3)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "loss"')  # a line cut by a crash is ignored
    assert [r["step"] for r in read_records(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    off = MetricsWriter(tmp_path / "rank1", enabled=False)
    off.write({"step": 1})
    assert not (tmp_path / "rank1").exists()


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    w = MetricsWriter(tmp_path, tensorboard=True)
    w.write({"step": 1, "loss": 2.0, "skipped": False})
    w.close()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_loss_curve_png(tmp_path):
    pytest.importorskip("matplotlib")
    records = [{"step": s, "loss": 3.0 / s} for s in range(1, 20)] + [{"step": 19, "val_loss": 0.5}]
    png = plot_loss_curve(records, tmp_path / "loss.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mfu_from_the_planner_flops(tmp_path):
    cfg = config(tmp_path, train={"steps": 2, "peak_tflops": 0.5})
    trainer = Trainer(cfg, data()[0], log=lambda _: None)
    records = trainer.fit()
    flops = flops_per_token(cfg.model, cfg.train.seq)["total"]
    for r in records:
        want = cfg.train.batch * cfg.train.seq * flops / r["step_s"] / 0.5e12
        assert r["mfu"] == pytest.approx(want)
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "loss.png").is_file()  # written at the end of the run
