"""Checkpoints through ``torch.distributed.checkpoint`` (DCP), written atomically.

A checkpoint is a folder ``<root>/step_00000100`` holding, in one DCP save:

- ``model`` and ``optim``: the state dicts of ``get_state_dict`` (parameter
  names as keys, so DDP/compile wrappers and FSDP sharding do not matter);
- ``train``: the step, scheduler, spike-guard history and loss scaler, pickled
  (the same on every rank);
- ``rank<r>``: that rank's RNG states (torch, CUDA, numpy, Python) and data
  position, pickled;

plus ``config.json``, the run's config. The folder is written under a temporary
name and renamed when complete; ``<root>/latest`` names the newest one and is
replaced atomically, so a crash at any point leaves the previous checkpoint
intact and pointed to. DCP works without a process group on one process.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from fastllm.io.atomic import write_text_atomic
from fastllm.train.distributed import barrier

LATEST = "latest"


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step_{step:08d}"


def latest(root: str | Path) -> Path | None:
    """The checkpoint ``root/latest`` points to, or None."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    return path if (path / ".metadata").is_file() else None


def resolve(path: str | Path) -> Path:
    """A checkpoint folder from itself, a checkpoints root, or a run's out_dir."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return path
    for root in (path, path / "checkpoints"):
        found = latest(root)
        if found is not None:
            return found
    raise ValueError(f"no checkpoint at {str(path)!r} (no .metadata, no latest pointer)")


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


write_atomic = write_text_atomic  # the name the loop uses


def save(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_state: dict[str, Any],
    rank_state: dict[str, Any],
    *,
    rank: int = 0,
    world_size: int = 1,
    config_json: str | None = None,
    keep: int = 0,
) -> Path:
    """Write the checkpoint of ``step`` (a collective: every rank calls it)."""
    root = Path(root)
    final = step_dir(root, step)
    tmp = root / f".tmp-{final.name}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    barrier()
    msd, osd = get_state_dict(model, optimizer)
    state = {
        "model": msd,
        "optim": osd,
        "train": pickle.dumps(train_state),
        f"rank{rank}": pickle.dumps(rank_state),
    }
    with warnings.catch_warnings():
        # "torch.distributed is ... uninitialized, assuming ... a single process": yes.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save(state, checkpoint_id=tmp)
    barrier()
    if rank == 0:
        if config_json is not None:
            write_atomic(tmp / "config.json", config_json)
        _fsync_dir(tmp)
        if final.exists():  # a rerun reaching a step saved before: swap, never leave a gap
            trash = root / f".old-{final.name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, final)
        write_atomic(root / LATEST, final.name + "\n")
        _fsync_dir(root)
        if keep:
            _prune(root, keep, final)
    barrier()
    return final


def load(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    rank: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load model (and optimizer) in place; returns (train_state, rank_state)."""
    path = resolve(path)
    if optimizer is not None:
        msd, osd = get_state_dict(model, optimizer)
        state: dict[str, Any] = {"model": msd, "optim": osd, "train": b"", f"rank{rank}": b""}
    else:
        state = {"model": get_model_state_dict(model)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=path)
    if optimizer is None:
        set_model_state_dict(model, state["model"])
        return {}, {}
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    return pickle.loads(state["train"]), pickle.loads(state[f"rank{rank}"])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(root: Path, keep: int, current: Path) -> None:
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, config, checkpoint folder) from a checkpoint folder, a checkpoints
    root or a run's out_dir: the model is rebuilt from the ``config.json`` saved
    with the checkpoint and its weights loaded."""
    from fastllm.model import Decoder
    from fastllm.train.config import TrainConfig

    folder = resolve(path)
    config = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
    model = Decoder(config.model).to(device)
    load(folder, model)
    model.eval()
    return model, config, folder


def find_tokenizer(folder: str | Path) -> Path | None:
    """The ``tokenizer.json`` saved with a run: beside the checkpoint or in the run's out_dir."""
    folder = Path(folder)
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "tokenizer.json").is_file():
            return candidate / "tokenizer.json"
    return None
