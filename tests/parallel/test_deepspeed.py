"""The DeepSpeed backend trains exactly as one process: ZeRO-1, 2 and 3 (and
CPU offload of the optimizer, and of the parameters at stage 3) under
torchrun with gloo, 5 AdamW steps of the tiny model in fp32 with gradient
accumulation and clipping, give per-step losses and final parameters within
1e-5 of the single-process run on the same global batch; the final
parameters are read back from the run's checkpoint on one process. A run
saved at step 3 and resumed in a new launch continues with the same losses;
an update the spike guard skips leaves parameters and Adam moments as the
torch engine does; tied embeddings and bf16 train too.

The modes run one after another in one torchrun launch (worker.py's
``runs``): starting torch and DeepSpeed costs more than the training. Config
checks need no launch (nor DeepSpeed installed)."""

from __future__ import annotations

import copy
import json
import shutil
import time

import pytest
import torch

from fastllm.config import ConfigError
from fastllm.train import Trainer
from fastllm.train.checkpoint import load_model

from ..train.helpers import config, data
from .launch import torchrun, torchrun_runs

BASE = {
    "model": {"tie_embeddings": False},
    "train": {"steps": 5, "batch": 8, "grad_accum": 2, "clip": 0.5, "dist_timeout_s": 60},
}
DS = {"backend": "deepspeed"}
TIED = {"tie_embeddings": True}
MODES = {
    "zero1": {**DS, "zero": 1},
    "zero2": {**DS, "zero": 2},
    "zero3": {**DS, "zero": 3},
    "zero2_offload_optimizer": {**DS, "zero": 2, "offload_optimizer": True},
    "zero3_offload_param": {**DS, "zero": 3, "offload_optimizer": True, "offload_param": True},
}
RESUME = "zero2_saved_at_3"
# The spike guard judging each norm against the last accepted one: step 4's
# norm is an outlier (skipped), step 5's is not (taken, with the moments the
# skip must have left alone).
SKIP = {"spike_norm_factor": 1.25, "spike_min_history": 1, "spike_window": 1}
SKIPS = {"zero2_skip": MODES["zero2"], "zero3_offload_skip": MODES["zero3_offload_param"]}


def _with(parallel: dict, **train) -> dict:
    overrides = copy.deepcopy(BASE)
    overrides["train"].update(train)
    return overrides | {"parallel": parallel}


def _one_process(out_dir, overrides: dict) -> tuple:
    """The one-process torch run: per-step losses, norms, records, final parameters."""
    trainer = Trainer(config(out_dir, **overrides), *data(), log=lambda _: None)
    records = trainer.fit()
    params = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return [r["loss"] for r in records], [r["grad_norm"] for r in records], records, params


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _one_process(tmp_path_factory.mktemp("single"), BASE)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Every mode, and the first 3 steps of the resume test, in one 2-process launch."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed unavailable")
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (the test extra)")
    out = tmp_path_factory.mktemp("deepspeed")
    runs = {name: {"overrides": _with(p)} for name, p in MODES.items()}
    runs[RESUME] = {"overrides": _with(MODES["zero2"], ckpt_every=3), "until": 3}
    runs |= {name: {"overrides": _with(p, **SKIP)} for name, p in SKIPS.items()}
    runs["zero3_bf16"] = {"overrides": _with(MODES["zero3"], dtype="bf16")}
    runs["zero3_tied"] = {"overrides": _with(MODES["zero3"]) | {"model": TIED}}
    t0 = time.perf_counter()
    results = torchrun_runs(2, out, runs, timeout=400)
    print(f"\none launch of {len(runs)} DeepSpeed runs: {time.perf_counter() - t0:.1f} s")
    return out, results


def _rel_params(out_dir, params) -> float:
    """The largest per-tensor difference (relative to the tensor's norm) of
    the checkpoint under ``out_dir`` from ``params``, read on one process."""
    model, _, folder = load_model(out_dir)
    assert folder.name == "step_00000005"
    return max(
        float((value - params[name]).norm() / params[name].norm())
        for name, value in model.state_dict().items()
    )


@pytest.mark.parametrize("mode", list(MODES))
def test_zero_stage_equals_one_process(launched, single, mode):
    out, results = launched
    losses, norms, records, params = single
    ranks = results[mode]
    for r in ranks:  # losses are reduced over the data-parallel ranks: all report the same
        assert r["losses"] == ranks[0]["losses"]
        assert r["dp"][1] == 2 and r["micro_batch"] == 2
    got = ranks[0]["losses"]
    diff = max(abs(a - b) / abs(b) for a, b in zip(got, losses, strict=True))
    worst = _rel_params(out / mode, params)
    print(f"\n{mode}: max rel loss diff {diff:.2e}, max rel parameter diff {worst:.2e}")
    assert diff < 1e-5, (got, losses)
    # The norm the spike guard saw before DeepSpeed's step is the global one, before clipping.
    assert ranks[0]["grad_norms"] == pytest.approx(norms, rel=1e-4)
    assert ranks[0]["val_loss"] == pytest.approx(records[-1]["val_loss"], rel=1e-5)
    assert worst < 1e-5
    ds = json.loads((out / mode / "deepspeed.json").read_text())
    assert ds["zero_optimization"]["stage"] == MODES[mode]["zero"]
    assert ds["gradient_accumulation_steps"] == 2 and ds["gradient_clipping"] == 0.5


def test_resume_at_step_3_continues_as_the_uninterrupted_run(launched, single, tmp_path):
    out, results = launched
    losses, _, _, params = single
    first = results[RESUME][0]
    assert first["losses"] == pytest.approx(losses[:3], rel=1e-5)
    step3 = out / RESUME / "checkpoints" / "step_00000003"
    assert (step3 / ".metadata").is_file() and (step3 / "deepspeed").is_dir()
    assert not list((out / RESUME / "checkpoints").glob(".tmp-*"))  # committed by rename
    run = tmp_path / "resumed"
    shutil.copytree(out / RESUME, run)
    t0 = time.perf_counter()
    again = torchrun(2, run, _with(MODES["zero2"], ckpt_every=3), timeout=300)
    print(f"\nresume launch: {time.perf_counter() - t0:.1f} s")
    assert all(r["start"] == 3 for r in again)
    got = again[0]["losses"]
    diff = max(abs(a - b) / abs(b) for a, b in zip(got, losses[3:], strict=True))
    worst = _rel_params(run, params)
    print(f"resumed: max rel loss diff {diff:.2e}, max rel parameter diff {worst:.2e}")
    assert diff < 1e-5, (got, losses[3:])
    assert worst < 1e-5


@pytest.mark.parametrize("mode", list(SKIPS))
def test_a_skipped_update_leaves_parameters_and_moments_as_they_were(
    launched, tmp_path_factory, mode
):
    """The spike guard skips step 4 under DeepSpeed as under the torch engine:
    same losses, same skips, and the same final parameters after step 5."""
    out, results = launched
    losses, norms, records, params = _one_process(
        tmp_path_factory.mktemp("single_skip"), _with({}, **SKIP)
    )
    assert [r["skipped"] for r in records] == [False, False, False, True, False]
    got = results[mode][0]
    assert got["skipped"] == [r["skipped"] for r in records]
    assert got["losses"] == pytest.approx(losses, rel=1e-5)
    assert got["grad_norms"] == pytest.approx(norms, rel=1e-4)
    assert _rel_params(out / mode, params) < 1e-5


def test_bf16_trains_and_checkpoints_fp32_weights(launched, single):
    """DeepSpeed's bf16 (bf16 weights, fp32 master copies in the optimizer)
    near the fp32 run; the checkpoint holds the fp32 master weights."""
    out, results = launched
    losses, _, _, params = single
    got = results["zero3_bf16"][0]["losses"]
    assert got == pytest.approx(losses, rel=5e-3)
    model, _, _ = load_model(out / "zero3_bf16")
    for v in model.state_dict().values():  # fp32 values, not bf16 ones widened
        assert v.dtype == torch.float32 and bool((v.bfloat16().float() != v).any())
    # Elementwise, Adam's m/sqrt(v) magnifies bf16 rounding of tiny gradients.
    assert _rel_params(out / "zero3_bf16", params) < 0.2
    ds = json.loads((out / "zero3_bf16" / "deepspeed.json").read_text())
    assert ds["bf16"] == {"enabled": True}


def test_tied_embeddings_under_zero3(launched, tmp_path_factory):
    """One weight for embedding and head: partitioned once, gathered once into
    both names of the checkpoint."""
    out, results = launched
    losses, _, _, params = _one_process(tmp_path_factory.mktemp("tied"), BASE | {"model": TIED})
    assert results["zero3_tied"][0]["losses"] == pytest.approx(losses, rel=1e-5)
    model, _, _ = load_model(out / "zero3_tied")
    assert model.output.weight is model.tok_embeddings.weight
    assert _rel_params(out / "zero3_tied", params) < 1e-5


def test_a_deepspeed_checkpoint_does_not_resume_under_the_torch_backend(launched, tmp_path):
    out, _ = launched
    run = tmp_path / "torch"
    shutil.copytree(out / RESUME, run)
    with pytest.raises(ValueError, match="deepspeed engine"):
        Trainer(config(run, **_with({}, ckpt_every=3)), *data(), log=lambda _: None)


# ---- config checks: no launch --------------------------------------------------


@pytest.mark.parametrize(
    ("parallel", "field", "words"),
    [
        ({"tp": 2}, "parallel.backend", "data parallelism only"),
        ({"pp": 2}, "parallel.backend", "data parallelism only"),
        ({"dp_replicate": 2}, "parallel.dp_replicate", "every process"),
        ({"zero": 0}, "parallel.zero", "1, 2 or 3"),
        ({"zero": 2, "offload_param": True}, "parallel.offload_param", "zero = 3"),
        ({"cpu_offload": True}, "parallel.cpu_offload", "offload_optimizer"),
        ({"param_dtype": "bf16"}, "parallel.param_dtype", "train.dtype"),
    ],
)
def test_deepspeed_layouts_refused_at_load(tmp_path, parallel, field, words):
    with pytest.raises(ConfigError, match=words) as e:
        config(tmp_path, parallel={**DS, **parallel})
    assert e.value.path == field


def test_deepspeed_knobs_refused_under_the_torch_backend(tmp_path):
    with pytest.raises(ConfigError) as e:
        config(tmp_path, parallel={"offload_optimizer": True})
    assert e.value.path == "parallel.offload_optimizer"
    with pytest.raises(ConfigError, match="1, 2 or 3"):
        config(tmp_path, parallel={"zero": 4})


def test_muon_refused_under_deepspeed(tmp_path):
    with pytest.raises(ConfigError, match="flat partitions") as e:
        config(tmp_path, optim={"name": "muon"}, parallel=DS)
    assert e.value.path == "optim.name"


def test_generated_config(tmp_path):
    from fastllm.parallel.deepspeed import deepspeed_config

    cfg = config(
        tmp_path,
        train={"batch": 16, "grad_accum": 2, "clip": 1.0, "dtype": "bf16"},
        parallel={**DS, "zero": 3, "offload_optimizer": True, "offload_param": True},
    )
    ds = deepspeed_config(cfg, 4)
    assert ds["train_batch_size"] == 16 and ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["gradient_accumulation_steps"] == 2 and ds["gradient_clipping"] == 1.0
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "cpu"
    assert ds["zero_allow_untested_optimizer"] and not ds["zero_force_ds_cpu_optimizer"]


def test_user_json_is_completed_and_checked(tmp_path):
    from fastllm.parallel.deepspeed import deepspeed_config

    user = tmp_path / "ds.json"

    def with_json(obj, **train):
        user.write_text(json.dumps(obj))
        return config(
            tmp_path,
            train={"batch": 8, "grad_accum": 2, **train},
            parallel={**DS, "zero": 2, "deepspeed_config": str(user)},
        )

    ok = {
        "gradient_accumulation_steps": "auto",
        "train_batch_size": 8,
        "zero_optimization": {"stage": 2, "overlap_comm": True, "reduce_bucket_size": 1000},
    }
    ds = deepspeed_config(with_json(ok), 2)
    assert ds["gradient_accumulation_steps"] == 2 and ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["zero_optimization"] == {"stage": 2, "overlap_comm": True, "reduce_bucket_size": 1000}
    for bad, key in [
        ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps"),
        ({"train_micro_batch_size_per_gpu": 1}, "train_micro_batch_size_per_gpu"),
        ({"zero_optimization": {"stage": 3}}, "zero_optimization.stage"),
        ({"bf16": {"enabled": True}}, "bf16.enabled"),
        ({"zero_optimization": {"offload_optimizer": {"device": "cpu"}}}, "offload_optimizer"),
        ({"optimizer": {"type": "Adam"}}, "'optimizer'"),
    ]:
        with pytest.raises(ConfigError, match=key) as e:
            deepspeed_config(with_json(bad), 2)
        assert e.value.path == "parallel.deepspeed_config"
    cfg = with_json({})
    user.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        deepspeed_config(cfg, 2)


def test_train_cli_takes_the_deepspeed_launchers_local_rank(capsys):
    from fastllm.train.__main__ import main

    assert main(["--local_rank=0", "--describe"]) == 0
    assert "deepspeed_config" in capsys.readouterr().out
