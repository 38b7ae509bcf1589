"""Checkpoints hold no pickle of ours: the train state is JSON plus tensors
(safetensors, DCP), and loading works with pickle disabled for our part."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata

from fastllm.train import Trainer
from fastllm.train import checkpoint as ckpt

from .helpers import config, data


def _forbid_pickle(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("pickle used while loading our checkpoint state")

    real_torch_load = torch.load

    def weights_only(*a, **k):  # torch's restricted unpickler: tensors and plain types only
        if k.get("weights_only") is not True:
            raise AssertionError("torch.load without weights_only=True")
        return real_torch_load(*a, **k)

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", weights_only)


@pytest.mark.parametrize("optim", ["adamw", "muon"])
def test_checkpoint_loads_without_pickle(tmp_path, monkeypatch, optim):
    cfg = config(tmp_path, train={"steps": 4, "dtype": "fp16"}, optim={"name": optim})
    trainer = Trainer(cfg, *data(), log=lambda _: None)
    trainer.fit()
    folder = ckpt.latest(tmp_path / "checkpoints")
    assert folder is not None and folder.name == "step_00000004"
    shared = json.loads((folder / "train.json").read_text())
    assert shared["train"]["step"] == 4 and "engine" in shared["train"]
    assert shared["optim"]["param_groups"]  # hyperparameters as JSON
    # DCP holds tensors only: no BytesStorageMetadata, i.e. no pickled objects.
    meta = FileSystemReader(str(folder)).read_metadata()
    kinds = {type(m).__name__ for m in meta.state_dict_metadata.values()}
    assert not any(
        isinstance(m, BytesStorageMetadata) for m in meta.state_dict_metadata.values()
    ), kinds

    # Our part — train state, RNG, data position — reads with pickle disabled.
    with monkeypatch.context() as m:
        _forbid_pickle(m)
        _, rank_state = ckpt.read_state(folder, 0)
    assert isinstance(rank_state["rng"]["torch"], torch.Tensor)
    assert rank_state["data"] == trainer.train_data.state_dict()

    # The whole resume: DCP reads its own metadata file (torch's format, tensor
    # shapes) with pickle and the tensors with torch's weights-only loader;
    # nothing of ours is unpickled.
    real_load = pickle.load
    calls = []

    def metadata_only(f, *a, **k):
        calls.append(getattr(f, "name", "?"))
        assert str(getattr(f, "name", "")).endswith(".metadata"), f
        return real_load(f, *a, **k)

    again_cfg = config(tmp_path, train={"steps": 6, "dtype": "fp16"}, optim={"name": optim})
    with monkeypatch.context() as m:
        _forbid_pickle(m)
        m.setattr(pickle, "load", metadata_only)
        again = Trainer(again_cfg, *data(), log=lambda _: None)
    assert again.step == 4
    assert again.engine.state_dict() == trainer.engine.state_dict()
    assert again.guard.state_dict() == trainer.guard.state_dict()
    for a, b in zip(
        trainer.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    sa, sb = trainer.optimizer.state_dict(), again.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k, st in sa["state"].items():
        for name, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][k][name])), (k, name)


def test_rng_state_round_trips_through_json(tmp_path):
    import random

    import numpy as np

    state = ckpt.rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    tensors: dict[str, torch.Tensor] = {}
    tree = json.loads(json.dumps(ckpt.encode(state, tensors)))
    torch.manual_seed(123), np.random.seed(5), random.seed(9)
    ckpt.set_rng_state(ckpt.decode(tree, tensors))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and (got[1] == expected[1]).all()
    assert got[2] == expected[2]
