"""TrainConfig: TOML plus dotted overrides; bad input fails naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastllm.train import TrainConfig
from fastllm.train.__main__ import main as train_main

REPO = Path(__file__).resolve().parents[2]


def test_toml_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[model]\nsize = "tiny"\ndim = 32\n[optim]\nname = "muon"\n[train]\nsteps = 5\n'
    )
    cfg = TrainConfig.load(
        path,
        [
            "--train.steps",
            "200",
            "--optim.lr=1e-3",
            "--train.out_dir",
            "runs/x",
            "--train.compile",
            "true",
        ],
    )
    assert cfg.model.dim == 32 and cfg.model.n_layers == 4  # tiny, with dim overridden
    assert cfg.optim.name == "muon" and cfg.optim.lr == 1e-3
    assert cfg.train.steps == 200 and cfg.train.out_dir == "runs/x" and cfg.train.compile is True
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["tiny.toml", "125M.toml"])
def test_the_shipped_run_configs_load(name):
    cfg = TrainConfig.load(REPO / "configs" / name)
    assert cfg.train.seq <= cfg.model.max_seq_len
    assert cfg.train.micro_batch(1) >= 1


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["--train.stepz", "3"], "train.stepz"),
        (["--train.steps", "many"], "train.steps"),
        (["--train.steps", "0"], "train.steps"),
        (["--train.dtype", "fp8"], "train.dtype"),
        (["--train.batch", "6", "--train.grad_accum", "4"], "train.batch"),
        (["--train.seq", "4096"], "train.seq"),
        (["--optim.name", "sgd"], "optim.name"),
        (["--optim.lrr", "1"], "optim.lrr"),
        (["--schedule.name", "step"], "schedule.name"),
        (["--model.dim", "-1"], "model.dim"),
        (["--data.val_fraction", "1.5"], "data.val_fraction"),
        (["--trian.steps", "3"], "trian"),
        (["--train.spike_factor", "0.5"], "train.spike_factor"),
        (["--train.steps", "5", "--schedule.warmup_steps", "10"], "schedule.warmup_steps"),
        (["--schedule.name", "wsd", "--schedule.decay_frac", "2"], "schedule.decay_frac"),
    ],
)
def test_errors_name_the_field(overrides, field):
    with pytest.raises((ValueError, TypeError), match=field.replace(".", r"\.")):
        TrainConfig.load(None, overrides)


def test_unknown_key_in_a_toml_table(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nsteps = 3\nwarmup = 10\n")
    with pytest.raises(ValueError, match=r"train\.warmup: unknown key"):
        TrainConfig.load(path)
    path.write_text("[training]\nsteps = 3\n")
    with pytest.raises(ValueError, match="training: unknown section"):
        TrainConfig.load(path)


def test_cli_reports_config_errors(capsys):
    assert train_main(["--train.stepz", "3"]) == 2
    assert "train.stepz" in capsys.readouterr().err


def test_describe_lists_every_knob_with_a_doc():
    text = TrainConfig.describe()
    for line in text.splitlines():
        if line and not line.startswith("["):
            name, _, doc = line.partition("#")
            assert "=" in name and doc.strip(), line
    assert "[train]" in text and "activation_checkpointing" in text
