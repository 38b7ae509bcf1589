"""DDP under torchrun with 2 gloo processes trains exactly as one process with
the same global batch (each rank reads its half of every global batch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastllm.train import Trainer

from .helpers import config, data

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = {
    "train": {"steps": 4, "batch": 8, "grad_accum": 2, "eval_every": 2, "dist_timeout_s": 60},
    "optim": {"name": "muon"},
}


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_equal_one_process(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        *_torchrun(),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "train" / "ddp_worker.py"),
        str(tmp_path / "ddp"),
        json.dumps(OVERRIDES),
    ]
    timeout = [shutil.which("timeout"), "150"] if shutil.which("timeout") else []
    proc = subprocess.run(timeout + cmd, env=env, capture_output=True, text=True, timeout=180)
    lines = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert sorted(r["rank"] for r in lines) == [0, 1], proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = lines
    assert a["world"] == 2 and a["micro_batch"] == 2  # 8 = 2 ranks × 2 micro-steps × 2
    # Losses and norms are reduced over ranks: every rank reports the same.
    assert a["losses"] == b["losses"] and a["param_sum"] == b["param_sum"]
    for r in lines:  # each rank resumed from the DCP checkpoint
        assert r["resumed_step"] == 4 and r["resumed_equal"] and r["resumed_data"]

    single = Trainer(config(tmp_path / "one", **OVERRIDES), *data(), log=lambda _: None)
    assert single.micro_batch == 4
    records = single.fit()
    assert a["losses"] == pytest.approx([r["loss"] for r in records], rel=1e-5)
    assert a["grad_norms"] == pytest.approx([r["grad_norm"] for r in records], rel=1e-4)
    assert a["val_loss"] == pytest.approx(records[-1]["val_loss"], rel=1e-5)
    ref = float(sum(p.detach().double().sum() for p in single.model.parameters()))
    assert a["param_sum"] == pytest.approx(ref, rel=1e-4)
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000004" / ".metadata").is_file()
