"""Checkpoints through ``torch.distributed.checkpoint`` (DCP), written atomically.

A checkpoint is a folder ``<root>/step_00000100`` holding, in one DCP save:

- ``model`` and ``optim``: the tensors of ``get_state_dict``'s state dicts
  (parameter names as keys, so DDP/compile wrappers and FSDP sharding do not
  matter) — tensors only, so DCP stores no pickled objects of ours;

plus, beside it, files that hold no pickle either:

- ``train.json``: the step, schedule, spike-guard history and loss scaler
  (the same on every rank), and the optimizer state's non-tensor part (param
  groups' hyperparameters), with references to the tensors in DCP;
- ``rank<r>.json`` + ``rank<r>.safetensors``: that rank's RNG states (torch,
  CUDA, numpy, Python) and data position;
- ``config.json``, the run's config.

An engine that keeps its optimizer in its own layout (DeepSpeed's ZeRO
partitions) saves the full model as ``model``, no ``optim`` tensors, and its
own checkpoint in a subfolder named in ``train.json`` (``native``); only that
engine resumes it, and :func:`load_model` reads it like any other.

Loading reads JSON and safetensors only; nothing of ours is unpickled.
The folder is written under a temporary name and renamed when complete;
``<root>/latest`` names the newest one and is replaced atomically, so a crash at any point leaves the previous checkpoint
intact and pointed to. DCP works without a process group on one process.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from collections.abc import Callable
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

from fastllm.io.atomic import commit_dir, write_bytes_atomic, write_json_atomic, write_text_atomic
from fastllm.parallel.distributed import barrier

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
    """Every RNG's state (torch, CUDA, numpy, Python) as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": keys, "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ---- JSON + tensors ---------------------------------------------------------
# A state tree of dicts, lists, tuples, scalars, tensors and numpy arrays is
# stored as JSON where each tensor leaf is {"__tensor__": key} (numpy arrays:
# {"__ndarray__": key, "dtype": ...}; tuples: {"__tuple__": [...]}) and the
# tensors themselves live under those keys in DCP or a safetensors file.


def encode(tree: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """``tree`` as JSON-able values, its tensors moved into ``tensors``."""
    if isinstance(tree, torch.Tensor):
        tensors[path] = tree
        return {"__tensor__": path}
    if isinstance(tree, np.ndarray):
        tensors[path] = torch.from_numpy(tree.astype(np.int64) if tree.dtype == np.uint32 else tree)
        return {"__ndarray__": path, "dtype": str(tree.dtype)}
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if not isinstance(k, str | int):
                raise TypeError(f"checkpoint state key {k!r} at {path!r} is not a str or int")
            out[str(k) if isinstance(k, str) else f"__int__{k}"] = encode(v, tensors, f"{path}/{k}")
        return out
    if isinstance(tree, tuple):
        return {"__tuple__": [encode(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [encode(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    raise TypeError(f"checkpoint state at {path!r} is a {type(tree).__name__}, not JSON or a tensor")


def decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__ndarray__" in tree:
            return tensors[tree["__ndarray__"]].numpy().astype(tree["dtype"])
        if "__tuple__" in tree:
            return tuple(decode(v, tensors) for v in tree["__tuple__"])
        return {
            (int(k[7:]) if k.startswith("__int__") else k): decode(v, tensors)
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    return tree


def _plain(tree: Any) -> Any:
    """``tree`` encoded, refusing tensors (the shared train state is JSON only)."""
    tensors: dict[str, torch.Tensor] = {}
    out = encode(tree, tensors)
    if tensors:
        raise TypeError(f"train state holds tensors at {sorted(tensors)[:3]}; keep it JSON")
    return out


def _tensor_keys(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return [tree["__tensor__"]]
        return [k for v in tree.values() for k in _tensor_keys(v)]
    if isinstance(tree, list):
        return [k for v in tree for k in _tensor_keys(v)]
    return []


def _write_rank(folder: Path, rank: int, state: dict[str, Any]) -> None:
    from safetensors.torch import save as save_tensors

    tensors: dict[str, torch.Tensor] = {}
    tree = encode(state, tensors)
    flat = {k: t.detach().cpu().contiguous() for k, t in tensors.items()}
    write_bytes_atomic(folder / f"rank{rank}.safetensors", save_tensors(flat))
    write_json_atomic(folder / f"rank{rank}.json", tree)


def read_state(folder: str | Path, rank: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train.json's tree, this rank's state) of a checkpoint folder, with the
    rank's tensors decoded; the optimizer's tensors stay references (they are
    in DCP). Reads JSON and safetensors only.

    A rank the saving run did not have (resuming on more processes) gets rank
    0's state: the data position is a global sample index, the same on every
    rank, and its RNG continues rank 0's."""
    from safetensors.torch import load as load_tensors

    folder = Path(folder)
    shared = json.loads((folder / "train.json").read_text())
    if not (folder / f"rank{rank}.json").is_file():
        rank = 0
    tree = json.loads((folder / f"rank{rank}.json").read_text())
    tensors = load_tensors((folder / f"rank{rank}.safetensors").read_bytes())
    return shared, decode(tree, tensors)


def _gather(tree: Any, world_size: int) -> list[Any]:
    """Every rank's ``tree`` (a JSON-able object), in rank order."""
    import torch.distributed as dist

    if world_size == 1 or not dist.is_initialized():
        return [tree]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, tree)
    return out


def merge_optim_trees(trees: list[Any]) -> Any:
    """One optimizer tree from every rank's: each rank's state entries (a
    pipeline stage or a ZeRO-1 owner has only its own parameters'), and each
    param group's parameter names in the order first seen."""
    if not any(tree.get("state") or tree.get("param_groups") for tree in trees):
        return trees[0]  # no optimizer tensors here (a DeepSpeed checkpoint keeps its own)
    merged: dict[str, Any] = {"state": {}, "param_groups": []}
    for tree in trees:
        for fqn, entry in tree["state"].items():
            merged["state"].setdefault(fqn, entry)
        for i, group in enumerate(tree["param_groups"]):
            if i == len(merged["param_groups"]):
                merged["param_groups"].append({**group, "params": []})
            names = merged["param_groups"][i]["params"]
            names.extend(n for n in group["params"] if n not in names)
    return merged


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
    states: tuple[dict[str, Any], dict[str, Any]] | None = None,
    native: tuple[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` (a collective: every rank calls it).

    ``states``: the (model, optimizer) state dicts to write instead of
    ``get_state_dict(model, optimizer)``; ``native``: (name, write) — every
    rank calls ``write(folder)`` to put an engine's own checkpoint in
    ``folder/name`` before the folder is committed."""
    root = Path(root)
    final = step_dir(root, step)
    tmp = root / f".tmp-{final.name}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    barrier()
    msd, osd = get_state_dict(model, optimizer) if states is None else states
    optim_tensors: dict[str, torch.Tensor] = {}
    optim_tree = merge_optim_trees(_gather(encode(osd, optim_tensors), world_size))
    with warnings.catch_warnings():
        # "torch.distributed is ... uninitialized, assuming ... a single process": yes.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save({"model": msd, "optim": optim_tensors}, checkpoint_id=tmp)
    if native is not None:
        native[1](tmp)
    _write_rank(tmp, rank, rank_state)
    if rank == 0:
        shared = {"format": 2, "train": _plain(train_state), "optim": optim_tree}
        if native is not None:
            shared["native"] = native[0]
        write_json_atomic(tmp / "train.json", shared)
    barrier()
    if rank == 0:
        if config_json is not None:
            write_text_atomic(tmp / "config.json", config_json)
        # Every file fsynced, then renamed into place; a step saved before (a
        # rerun reaching it again) is swapped out, never leaving a gap.
        commit_dir(tmp, final)
        write_text_atomic(root / LATEST, final.name + "\n")
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
    if not (path / "train.json").is_file():
        raise ValueError(f"{path} is not a checkpoint of this version (no train.json)")
    shared, rank_state = read_state(path, rank) if optimizer is not None else ({}, {})
    if shared.get("native"):
        raise ValueError(
            f"{path} holds the optimizer state of a {shared['native']} engine: resume it with "
            f"parallel.backend = '{shared['native']}' (its weights load with load_model)"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        if optimizer is None:
            state: dict[str, Any] = {"model": get_model_state_dict(model)}
            dcp.load(state, checkpoint_id=path)
            set_model_state_dict(model, state["model"])
            return {}, {}
        msd, osd = get_state_dict(model, optimizer)
        mine: dict[str, torch.Tensor] = {}
        encode(osd, mine)
        # The checkpoint holds every rank's parameters (every pipeline stage,
        # every ZeRO-1 owner); this rank reads those it has.
        tree = dict(shared["optim"])
        tree["state"] = {k: v for k, v in tree["state"].items() if k in osd["state"]}
        wanted = _tensor_keys(tree)
        unknown = [k for k in mine if k not in set(wanted)]
        if unknown:
            raise ValueError(f"{path}: optimizer state {unknown[:3]} is not in the checkpoint")
        missing = [k for k in wanted if k not in mine]
        if missing:
            raise ValueError(f"{path}: optimizer state {missing[:3]} has no match in this optimizer")
        optim_tensors = {k: mine[k] for k in wanted}
        state = {"model": msd, "optim": optim_tensors}
        dcp.load(state, checkpoint_id=path)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=decode(tree, state["optim"]),
    )
    return decode(shared["train"], {}), rank_state


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
