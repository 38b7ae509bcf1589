"""A kill -9 of one rank mid-run, then a rerun: the run resumes from the last
complete checkpoint, loses nothing, and its loss curve from there equals the
uninterrupted one (FSDP2, 2 processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from fastllm.train import Trainer
from fastllm.train.checkpoint import latest
from fastllm.train.metrics import read_records

from ..train.helpers import config, data
from .launch import torchrun, torchrun_command

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed unavailable"
)

OVERRIDES = {
    "train": {
        "steps": 40,
        "batch": 8,
        "ckpt_every": 4,
        "keep_checkpoints": 0,
        "dist_timeout_s": 30,
    },
    "parallel": {"dp_shard": 2},
}


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_kill_minus_9_one_rank_then_rerun_resumes_exactly(tmp_path):
    one = {k: v for k, v in OVERRIDES.items() if k != "parallel"}
    straight = Trainer(config(tmp_path / "straight", **one), *data(), log=lambda _: None).fit()
    want = {r["step"]: r["loss"] for r in straight}

    out = tmp_path / "run"
    cmd, env = torchrun_command(2, out, OVERRIDES)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            found = latest(out / "checkpoints")
            if found is not None and found.name >= "step_00000008":
                workers = _children(proc.pid)
                if workers:
                    killed = workers[-1]
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.02)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "the run ended before a rank could be killed"
    assert proc.returncode != 0
    before = latest(out / "checkpoints")
    start = int(before.name.split("_")[1])
    assert 8 <= start < 40

    again = torchrun(2, out, OVERRIDES)
    assert again[0]["start"] == start  # resumed from the last complete checkpoint
    got = dict(zip(range(start + 1, 41), again[0]["losses"], strict=True))
    for step, loss in got.items():
        assert loss == pytest.approx(want[step], rel=1e-5), step
    # Nothing lost, nothing twice: the metrics file holds every step once, as uninterrupted.
    records = read_records(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 41))
    for r in records:
        assert r["loss"] == pytest.approx(want[r["step"]], rel=1e-5)
