"""``torchrun`` of tests/parallel/worker.py with a timeout, and its per-rank results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def torchrun(
    nproc: int,
    out_dir: Path,
    overrides: dict[str, Any],
    until: int | None = None,
    timeout: int = 240,
) -> list[dict[str, Any]]:
    """Every rank's result line, sorted by rank; fails with the output when a
    rank printed none (whatever the exit code)."""
    cmd, env = torchrun_command(nproc, out_dir, overrides)
    cmd += [str(until)] if until is not None else []
    wrap = [shutil.which("timeout"), str(timeout)] if shutil.which("timeout") else []
    proc = subprocess.run(wrap + cmd, env=env, capture_output=True, text=True, timeout=timeout + 30)
    lines = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    ranks = sorted(r["rank"] for r in lines)
    assert ranks == list(range(nproc)), proc.stdout[-2000:] + proc.stderr[-4000:]
    return sorted(lines, key=lambda r: r["rank"])


def torchrun_runs(
    nproc: int, out_dir: Path, runs: dict[str, dict[str, Any]], timeout: int = 240
) -> dict[str, list[dict[str, Any]]]:
    """Several runs in one launch (worker.py's ``runs``): each run's per-rank
    results, sorted by rank; fails with the output when a run lacks a rank."""
    cmd, env = torchrun_command(nproc, out_dir, {"runs": runs})
    wrap = [shutil.which("timeout"), str(timeout)] if shutil.which("timeout") else []
    proc = subprocess.run(wrap + cmd, env=env, capture_output=True, text=True, timeout=timeout + 30)
    lines = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    out: dict[str, list[dict[str, Any]]] = {}
    for name in runs:
        mine = sorted((r for r in lines if r.get("run") == name), key=lambda r: r["rank"])
        assert [r["rank"] for r in mine] == list(range(nproc)), (
            f"run {name}:\n" + proc.stdout[-2000:] + proc.stderr[-4000:]
        )
        out[name] = mine
    return out


def torchrun_command(
    nproc: int, out_dir: Path, overrides: dict[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment :func:`torchrun` runs (for a test that
    drives the process itself)."""
    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        *launcher,
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        str(REPO / "tests" / "parallel" / "worker.py"),
        str(out_dir),
        json.dumps(overrides),
    ]
    return cmd, env
