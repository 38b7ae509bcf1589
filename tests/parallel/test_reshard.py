"""Checkpoints reshard: saved under one layout (dp_shard 2 × tp 2, 4
processes; ZeRO-1), resumed under others (1 process; dp_shard 4; pp 2 ×
dp 2; ZeRO-3), the next steps' losses equal the uninterrupted run's. The data position is a global sample
index, so the run continues at the same global sample though the
data-parallel size changed."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from fastllm.train import Trainer

from ..train.helpers import config, data
from .launch import torchrun

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed unavailable"
)

BASE = {
    "model": {"tie_embeddings": False},
    "train": {"steps": 6, "batch": 8, "ckpt_every": 3, "clip": 0.5, "dist_timeout_s": 60},
}


def _with(parallel: dict) -> dict:
    return copy.deepcopy(BASE) | {"parallel": parallel}


def test_save_at_dp2_tp2_resume_at_one_process_dp4_and_pp2_dp2(tmp_path):
    straight = Trainer(config(tmp_path / "straight", **BASE), *data(), log=lambda _: None).fit()
    want = [r["loss"] for r in straight]

    saved = tmp_path / "saved"
    first = torchrun(4, saved, _with({"dp_shard": 2, "tp": 2}), until=3)
    assert first[0]["losses"] == pytest.approx(want[:3], rel=1e-5)
    assert (saved / "checkpoints" / "step_00000003" / ".metadata").is_file()

    one = tmp_path / "one"
    shutil.copytree(saved, one)
    resumed = Trainer(config(one, **BASE), *data(), log=lambda _: None)
    assert resumed.step == 3 and resumed.mesh.dp_size == 1
    got = [r["loss"] for r in resumed.fit()]
    assert got == pytest.approx(want[3:], rel=1e-5)

    four = tmp_path / "four"
    shutil.copytree(saved, four)
    again = torchrun(4, four, _with({"dp_shard": 4}))
    assert all(r["start"] == 3 for r in again)
    assert again[0]["losses"] == pytest.approx(want[3:], rel=1e-5)

    # Each pipeline stage reads its own blocks' weights and optimizer state.
    piped = tmp_path / "piped"
    shutil.copytree(saved, piped)
    staged = torchrun(4, piped, _with({"pp": 2, "dp_shard": 2}))
    assert all(r["start"] == 3 for r in staged)
    assert staged[-1]["losses"] == pytest.approx(want[3:], rel=1e-5)
    # ... and their checkpoint (each stage's part) resumes on one process.
    final = Trainer(config(piped, **BASE), *data(), log=lambda _: None)
    assert final.step == 6


def test_zero1_checkpoint_resumes_under_zero1_and_zero3(tmp_path):
    """ZeRO-1 saves each owner's optimizer state; the checkpoint holds them
    all, so it resumes under ZeRO-1 (each rank reading its own) or ZeRO-3."""
    straight = Trainer(config(tmp_path / "straight", **BASE), *data(), log=lambda _: None).fit()
    want = [r["loss"] for r in straight]
    saved = tmp_path / "saved"
    first = torchrun(2, saved, _with({"zero": 1}), until=3)
    assert first[0]["losses"] == pytest.approx(want[:3], rel=1e-5)
    for zero in (1, 3):
        run = tmp_path / f"zero{zero}"
        shutil.copytree(saved, run)
        again = torchrun(2, run, _with({"zero": zero}))
        assert all(r["start"] == 3 for r in again)
        assert again[0]["losses"] == pytest.approx(want[3:], rel=1e-5), zero


def test_hf_export_from_a_sharded_checkpoint_equals_the_one_process_export(tmp_path):
    """A dp_shard 2 × tp 2 checkpoint, gathered offline from its DCP folder on
    one process, exports the same transformers model as a one-process run."""
    from transformers import LlamaForCausalLM

    from fastllm.model.hf import main as export_main

    overrides = copy.deepcopy(BASE)
    overrides["train"]["steps"] = 3
    Trainer(config(tmp_path / "one", **overrides), *data(), log=lambda _: None).fit()
    torchrun(4, tmp_path / "sharded", overrides | {"parallel": {"dp_shard": 2, "tp": 2}})
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    logits = []
    for name in ("one", "sharded"):
        out = tmp_path / f"hf-{name}"
        assert export_main(["--checkpoint", str(tmp_path / name), "--out", str(out)]) == 0
        hf = LlamaForCausalLM.from_pretrained(out).eval()
        with torch.no_grad():
            logits.append(hf(ids).logits)
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-5)


def test_muon_momentum_reshards(tmp_path):
    """Muon's momentum is sharded like the parameters (FSDP2) or held by
    ZeRO-1's owners; a ZeRO-3 checkpoint resumes under ZeRO-1 and on one
    process with the uninterrupted run's losses."""
    muon = copy.deepcopy(BASE) | {"optim": {"name": "muon", "lr": 1e-2, "muon_lr": 0.02}}
    straight = Trainer(config(tmp_path / "straight", **muon), *data(), log=lambda _: None).fit()
    want = [r["loss"] for r in straight]
    saved = tmp_path / "saved"
    first = torchrun(2, saved, muon | {"parallel": {"zero": 3}}, until=3)
    assert first[0]["losses"] == pytest.approx(want[:3], rel=1e-5)
    zero1 = tmp_path / "zero1"
    shutil.copytree(saved, zero1)
    again = torchrun(2, zero1, muon | {"parallel": {"zero": 1}})
    assert all(r["start"] == 3 for r in again)
    assert again[0]["losses"] == pytest.approx(want[3:], rel=1e-5)
    one = tmp_path / "one"
    shutil.copytree(saved, one)
    resumed = Trainer(config(one, **muon), *data(), log=lambda _: None)
    assert resumed.step == 3
    assert [r["loss"] for r in resumed.fit()] == pytest.approx(want[3:], rel=1e-5)
