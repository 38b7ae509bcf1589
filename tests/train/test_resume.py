"""Checkpoints: a resumed run reproduces the uninterrupted one bit for bit on
CPU (model, optimizer, schedule, RNG, data position, guard history); writes are
atomic with a ``latest`` pointer; a killed process resumes the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastllm.train import TrainConfig, Trainer
from fastllm.train import checkpoint as ckpt
from fastllm.train.metrics import read_records

from .helpers import config, data, tokens

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(log=lambda _: None)


@pytest.mark.parametrize(
    "optim, train",
    [
        ({"name": "adamw"}, {"dtype": "fp32"}),
        ({"name": "muon"}, {"dtype": "bf16", "grad_accum": 2, "spike_min_history": 2}),
        ({"name": "adamw"}, {"dtype": "fp16", "z_loss": 1e-3}),
    ],
    ids=["adamw-fp32", "muon-bf16-accum", "adamw-fp16-zloss"],
)
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, optim, train):
    train = {"steps": 8, "eval_every": 4, **train}
    tr, val = data()
    straight = Trainer(config(tmp_path / "a", optim=optim, train=train), tr, val, **QUIET)
    full = straight.fit()

    tr, val = data()
    first = Trainer(
        config(tmp_path / "b", optim=optim, train={**train, "ckpt_every": 4}), tr, val, **QUIET
    )
    head = first.fit(until=4)
    assert ckpt.latest(tmp_path / "b" / "checkpoints").name == "step_00000004"
    del first
    torch.manual_seed(1234)  # disturb the global RNG: the checkpoint must restore it

    tr, val = data()
    second = Trainer(
        config(tmp_path / "b", optim=optim, train={**train, "ckpt_every": 4}), tr, val, **QUIET
    )
    assert second.step == 4
    tail = second.fit()
    resumed = head + tail
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full]
    assert [r["grad_norm"] for r in resumed] == [r["grad_norm"] for r in full]
    assert [r.get("val_loss") for r in resumed] == [r.get("val_loss") for r in full]
    for (k, a), b in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    # The metrics file of the resumed run holds each step once.
    assert [r["step"] for r in read_records(tmp_path / "b" / "metrics.jsonl")] == list(range(1, 9))


def test_checkpoint_folder_is_complete_and_pointed_to(tmp_path):
    tr, _ = data()
    trainer = Trainer(
        config(tmp_path, train={"steps": 6, "ckpt_every": 2, "keep_checkpoints": 2}), tr, **QUIET
    )
    trainer.fit()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000004", "step_00000006"]
    assert (root / "latest").read_text().strip() == "step_00000006"
    folder = ckpt.resolve(tmp_path)
    assert folder == root / "step_00000006"
    assert json.loads((folder / "config.json").read_text())["train"]["steps"] == 6
    # A crash mid-save leaves only a hidden temporary folder; latest still resolves.
    (root / ".tmp-step_00000008").mkdir()
    assert ckpt.resolve(tmp_path) == folder
    model, cfg, _ = ckpt.load_model(tmp_path)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def _cli(out_dir: Path, token_file: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "fastllm.train",
        "--model.vocab_size", "64", "--model.dim", "32", "--model.n_layers", "2",
        "--model.n_heads", "4", "--model.n_kv_heads", "2", "--model.max_seq_len", "32",
        "--optim.lr", "1e-2", "--train.steps", "8", "--train.batch", "4", "--train.seq", "16",
        "--train.dtype", "fp32", "--train.eval_every", "0", "--train.log_every", "1",
        "--train.ckpt_every", "3", "--train.progress", "false", "--train.tensorboard", "false",
        "--train.out_dir", str(out_dir), "--data.tokens", str(token_file), "--data.val_fraction", "0.1",
        *extra,
    ]  # fmt: skip


def test_a_killed_process_resumes_bit_for_bit(tmp_path):
    """The CLI is SIGKILLed after its step-3 checkpoint; fresh objects in this
    process resume from what it left and finish; the metrics equal an
    uninterrupted run's."""
    token_file = tmp_path / "tokens.npy"
    np.save(token_file, tokens().numpy().astype(np.uint16))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(run, token_file), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        for line in proc.stdout:
            if "saved checkpoint" in line and "step_00000003" in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.latest(run / "checkpoints").name in ("step_00000003", "step_00000006")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocess (OMP_NUM_THREADS=1)
    try:
        messages: list[str] = []
        cfg = TrainConfig.load(None, _cli(run, token_file)[3:])
        resumed = Trainer(cfg, *cfg.data.build(cfg.model), log=messages.append)
        assert any(m.startswith("resumed from") for m in messages)
        resumed.fit()
        cfg = TrainConfig.load(None, _cli(tmp_path / "straight", token_file)[3:])
        straight = Trainer(cfg, *cfg.data.build(cfg.model), **QUIET).fit()
    finally:
        torch.set_num_threads(threads)
    b = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 9))
    assert [r["loss"] for r in b] == [r["loss"] for r in straight]
    for (k, v), w in zip(
        resumed.model.state_dict().items(), _final_params(tmp_path / "straight"), strict=True
    ):
        assert torch.equal(v, w), k


def _final_params(out_dir: Path) -> list[torch.Tensor]:
    model, _, _ = ckpt.load_model(out_dir)
    return list(model.state_dict().values())
