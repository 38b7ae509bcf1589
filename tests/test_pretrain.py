"""``python -m fastllm.pretrain``: the embedded default end to end (shrunk),
through the data pipeline, and a rerun that reuses every finished stage."""

from __future__ import annotations

import json
import math

from fastllm import pretrain
from fastllm.shards import read_manifest, verify

# A smaller corpus and vocabulary keep the test to seconds; the stages and
# code paths are the default run's. The model takes the tokenizer's vocabulary.
SMALL = ["--corpus.max_bytes", "1500000", "--pipeline.tokenizer.train_vocab_size", "600"]
FLAGS = [
    *SMALL,
    "--train.steps", "6", "--train.eval_every", "3", "--train.ckpt_every", "3",
    "--train.batch", "4", "--train.seq", "64", "--schedule.warmup_steps", "2",
    "--train.progress", "false",
]  # fmt: skip


def test_embedded_default_end_to_end_and_rerun_reuses(tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain.main(["--out", str(out), *FLAGS]) == 0
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == ["corpus", "pipeline", "train"]
    assert not any(s["reused"] for s in stages.values())
    data = stages["pipeline"]["info"]
    assert data["documents"] == stages["corpus"]["info"]["documents"]
    assert data["train_documents"] > 10 and data["val_documents"] >= 1
    # Every 40th kept document is held out.
    kept = data["documents"] - data["exact_duplicates"] - data["near_duplicates"]
    assert data["val_documents"] == kept // 40
    assert data["train_documents"] + data["val_documents"] == kept
    assert data["vocab_size"] == 600
    assert data["train_tokens"] > 10_000
    # The shards are the pipeline's, with its report beside them.
    shards, val = out / "data" / "shards", out / "data" / "val_shards"
    assert verify(shards) == [] and verify(val) == []
    assert read_manifest(shards)["documents"] == data["train_documents"]
    assert read_manifest(val)["tokens"] == data["val_tokens"]
    assert json.loads((out / "data" / "report.json").read_text())["totals"]["val_documents"] == (
        data["val_documents"]
    )
    train = stages["train"]["info"]
    assert train["steps"] == 6 and math.isfinite(train["val_loss"])
    assert train["val_loss"] < math.log(600)  # it learned something
    assert len(report["samples"]) == 3 and all(report["samples"])
    assert (out / "model" / "loss.png").exists() or "matplotlib" in capsys.readouterr().out

    # The rerun reuses every stage: same tokenizer, same shards, no new steps.
    before = (shards / "manifest.json").read_bytes()
    assert pretrain.main(["--out", str(out), *FLAGS]) == 0
    again = {s["name"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert all(s["reused"] for s in again.values())
    assert again["train"]["info"]["steps"] == 6
    assert (shards / "manifest.json").read_bytes() == before


def test_config_without_shards_is_an_error_naming_the_field(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[train]\nsteps = 3\n")
    assert pretrain.main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "[data] shards" in capsys.readouterr().err


def test_bad_override_stops_before_any_work(tmp_path, capsys):
    assert pretrain.main(["--out", str(tmp_path / "o"), "--train.stepz", "3"]) == 2
    assert "stepz" in capsys.readouterr().err
    # At any depth, the pipeline's knobs included.
    assert pretrain.main(["--out", str(tmp_path / "o"), "--pipeline.dedup.treshold", "1"]) == 2
    assert "pipeline.dedup.treshold" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_describe_lists_the_embedded_defaults(capsys):
    assert pretrain.main(["--describe"]) == 0
    text = capsys.readouterr().out
    for line in ("val_every = 40", "train_vocab_size = 4096", "steps = 400", "[pipeline.dedup]"):
        assert line in text
