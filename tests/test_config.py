"""The one config mechanism: TOML + dotted overrides at any depth, one
ConfigError naming the field, sections registered by other packages, and
``--describe`` listing every knob of the train and data commands."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastllm.config import ConfigError, Section, apply_overrides, check, knob, section
from fastllm.data.config import PipelineConfig
from fastllm.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DpoConfig(Section):
    beta: float = knob(0.1, "KL weight of DPO")
    loss: str = knob("sigmoid", "sigmoid or ipo")

    def validate(self) -> None:
        check(self.beta > 0, "beta", f"must be > 0, got {self.beta}")


@dataclass(frozen=True)
class Inner(Section):
    depth: int = knob(3, "how deep")


@dataclass(frozen=True)
class Outer(Section):
    inner: Inner = section(Inner)
    name: str = knob("x", "a name")


@pytest.fixture
def with_post(monkeypatch):
    """``[post.dpo]`` and ``[deep]`` registered by a "package", undone after."""
    monkeypatch.setattr(TrainConfig, "_extensions", {}, raising=False)
    TrainConfig.register("post.dpo", DpoConfig)
    TrainConfig.register("deep", Outer)


def test_overrides_at_any_depth(with_post):
    cfg = TrainConfig.load(
        None,
        [
            "--post.dpo.beta",
            "0.2",
            "--deep.inner.depth=5",
            "--train.steps",
            "7",
            "--optim.betas",
            "[0.8, 0.9]",
        ],
    )
    assert cfg.post.dpo.beta == 0.2 and cfg.post.dpo.loss == "sigmoid"
    assert cfg.deep.inner.depth == 5 and cfg.train.steps == 7 and cfg.optim.betas == (0.8, 0.9)
    # The registered sections round-trip through to_dict / from_dict (checkpoints' config.json).
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.post.dpo.beta == 0.2 and again.deep.inner.depth == 5


def test_data_overrides_at_depth():
    overrides = [
        "--filter.c4.enabled",
        "false",
        "--filter.gopher_quality.min_doc_words=80",
        "--dedup.threshold",
        "0.7",
    ]
    cfg = PipelineConfig.from_dict(apply_overrides({}, overrides))
    assert cfg.filter.c4.enabled is False and cfg.filter.gopher_quality.min_doc_words == 80
    assert cfg.dedup.threshold == 0.7


@pytest.mark.parametrize(
    "override, field",
    [
        (["--post.dpo.betta", "1"], "post.dpo.betta: unknown key"),
        (["--post.dpo.beta", "0"], "post.dpo.beta: must be > 0"),
        (["--post.dpx.beta", "1"], "post.dpx: unknown section"),
        (["--deep.inner.depht", "1"], "deep.inner.depht: unknown key"),
        (["--deep.inner.depth", "many"], "deep.inner.depth: expected an integer"),
        (["--model.dimm", "8"], "model.dimm: unknown key"),
        (["--train.dtype", "fp8"], "train.dtype: expected one of"),
        (["--trian.steps", "1"], "trian: unknown section"),
    ],
)
def test_a_wrong_key_or_value_at_any_depth_names_the_field(with_post, override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        TrainConfig.load(None, override)
    assert isinstance(e.value, ValueError)


def _knobs(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(table, key) of every knob under ``cls``, recursively."""
    out = []
    for f in dataclasses.fields(cls):
        hint = cls.__dataclass_fields__[f.name].type
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, Section):
            out += _knobs(type(default), f"{prefix}.{f.name}".lstrip("."))
        else:
            out.append((prefix, f.name))
        del hint
    return out


def _tables(text: str) -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line[1 : line.index("]")]
            tables.setdefault(current, set())
        elif " = " in line and not line.startswith("#"):
            tables.setdefault(current, set()).add(line.split(" = ")[0].strip())
    return tables


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    "command, root",
    [
        (["fastllm.train", "--describe"], TrainConfig),
        (["fastllm.data", "run", "--describe"], PipelineConfig),
    ],
)
def test_describe_lists_every_knob(command, root):
    proc = _run(*command)
    assert proc.returncode == 0, proc.stderr
    tables = _tables(proc.stdout)
    knobs = _knobs(root)
    assert len(knobs) > 20
    missing = [f"{t}.{k}" for t, k in knobs if k not in tables.get(t, set())]
    assert not missing, missing
    # Each knob line has a default and a doc.
    lines = [x for x in proc.stdout.splitlines() if " = " in x and not x.startswith("[")]
    assert all("  # " in x for x in lines), [x for x in lines if "  # " not in x][:3]


@pytest.mark.parametrize(
    "command, message",
    [
        (["fastllm.train", "--model.dimm", "8"], "model.dimm: unknown key"),
        (["fastllm.train", "--train.steps", "0"], "train.steps: must be >= 1"),
        (["fastllm.data", "run", "--filter.c4.min_wordz", "3"], "filter.c4.min_wordz: unknown key"),
        (["fastllm.plan", "--plan.gpus", "x"], "plan.gpus"),
    ],
)
def test_every_cli_reports_the_field_and_exits_2(command, message):
    proc = _run(*command)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_sections_built_in_code_are_checked_too():
    with pytest.raises(ConfigError, match=r"model\.n_heads"):
        TrainConfig.from_dict({}).model.replace(n_heads=5)
    with pytest.raises(ConfigError, match=r"train\.dtype: must be one of"):
        TrainConfig.from_dict({}).train.replace(dtype="fp8")
