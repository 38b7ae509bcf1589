"""``python -m fastllm.pretrain``: the embedded default end to end (shrunk),
and a rerun that reuses every finished stage."""

from __future__ import annotations

import json
import math

import pytest

from fastllm import pretrain
from fastllm.shards import verify


@pytest.fixture
def small(monkeypatch):
    # A smaller corpus and vocabulary keep the test to seconds; the stages
    # and code paths are the default run's.
    monkeypatch.setattr(pretrain, "CORPUS_BYTES", 1_500_000)
    monkeypatch.setattr(pretrain, "VOCAB_SIZE", 600)


FLAGS = [
    "--train.steps", "6", "--train.eval_every", "3", "--train.ckpt_every", "3",
    "--train.batch", "4", "--train.seq", "64", "--schedule.warmup_steps", "2",
    "--train.progress", "false",
]  # fmt: skip


def test_embedded_default_end_to_end_and_rerun_reuses(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain.main(["--out", str(out), *FLAGS]) == 0
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == ["corpus", "tokenizer", "shards", "train"]
    assert not any(s["reused"] for s in stages.values())
    assert stages["corpus"]["info"]["train_documents"] > 10
    assert stages["tokenizer"]["info"]["vocab_size"] == 600
    assert stages["shards"]["info"]["train"]["tokens"] > 10_000
    assert verify(out / "shards" / "train") == [] and verify(out / "shards" / "val") == []
    train = stages["train"]["info"]
    assert train["steps"] == 6 and math.isfinite(train["val_loss"])
    assert train["val_loss"] < math.log(600)  # it learned something
    assert len(report["samples"]) == 3 and all(report["samples"])
    assert (out / "model" / "loss.png").exists() or "matplotlib" in capsys.readouterr().out

    # The rerun reuses every stage: same tokenizer, same shards, no new steps.
    before = (out / "shards" / "train" / "manifest.json").read_bytes()
    assert pretrain.main(["--out", str(out), *FLAGS]) == 0
    again = {s["name"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert all(s["reused"] for s in again.values())
    assert again["train"]["info"]["steps"] == 6
    assert (out / "shards" / "train" / "manifest.json").read_bytes() == before


def test_config_without_shards_is_an_error_naming_the_field(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[train]\nsteps = 3\n")
    assert pretrain.main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "[data] shards" in capsys.readouterr().err


def test_bad_override_stops_before_any_work(small, tmp_path, capsys):
    assert pretrain.main(["--out", str(tmp_path / "o"), "--train.stepz", "3"]) == 2
    assert "stepz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
