"""``TrainConfig``: every knob of a pretraining run, from TOML plus dotted overrides.

A run config is a TOML file with the tables ``[model]``, ``[optim]``,
``[schedule]``, ``[train]`` and ``[data]``; each table is a typed dataclass and
every field has a default and a one-line doc (``TrainConfig.describe()``).
Command lines override single fields: ``--train.steps 200 --optim.name muon``.
Unknown tables or keys and wrongly typed values are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastllm.model.config import ModelConfig, dataclass_from_dict
from fastllm.optim.routing import OptimConfig
from fastllm.optim.schedule import ScheduleConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DTYPES = ("bf16", "fp16", "fp32")


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class LoopConfig:
    """The loop itself (the ``[train]`` table)."""

    steps: int = field(default=200, metadata=_doc("optimizer steps of the whole run"))
    batch: int = field(
        default=16,
        metadata=_doc(
            "global batch in sequences per optimizer step (all ranks, all micro-batches)"
        ),
    )
    seq: int = field(default=128, metadata=_doc("tokens per sequence (<= model.max_seq_len)"))
    grad_accum: int = field(
        default=1, metadata=_doc("micro-batches per optimizer step on each rank")
    )
    clip: float = field(
        default=1.0, metadata=_doc("max global gradient norm; 0 = no clipping (norm still logged)")
    )
    dtype: str = field(
        default="bf16", metadata=_doc("autocast dtype: bf16, fp16 (with loss scaling) or fp32")
    )
    compile: bool = field(default=False, metadata=_doc("torch.compile the model"))
    activation_checkpointing: bool = field(
        default=False, metadata=_doc("recompute each block's activations in backward")
    )
    z_loss: float = field(
        default=0.0, metadata=_doc("weight of mean(logsumexp(logits)²) in the loss (PaLM: 1e-4)")
    )
    spike_factor: float = field(
        default=3.0,
        metadata=_doc("skip an update whose loss exceeds this × the running median; 0 = off"),
    )
    spike_norm_factor: float = field(
        default=10.0,
        metadata=_doc("skip an update whose grad norm exceeds this × the running median; 0 = off"),
    )
    spike_window: int = field(default=50, metadata=_doc("accepted steps in the running median"))
    spike_min_history: int = field(
        default=10, metadata=_doc("accepted steps before outliers are judged (non-finite always)")
    )
    eval_every: int = field(
        default=50, metadata=_doc("validate every N steps; 0 = at the end only")
    )
    eval_batches: int = field(default=8, metadata=_doc("micro-batches per rank in a validation"))
    log_every: int = field(default=10, metadata=_doc("write a metrics record every N steps"))
    ckpt_every: int = field(
        default=100, metadata=_doc("checkpoint every N steps; 0 = at the end only")
    )
    keep_checkpoints: int = field(default=2, metadata=_doc("checkpoints kept on disk; 0 = all"))
    resume: bool = field(
        default=True, metadata=_doc("continue from out_dir/checkpoints/latest if any")
    )
    out_dir: str = field(
        default="runs/tiny", metadata=_doc("metrics, checkpoints and plots go here")
    )
    seed: int = field(default=0, metadata=_doc("seed of init, data order and sampling"))
    device: str = field(
        default="auto", metadata=_doc("auto (cuda if available, else cpu), cpu or cuda")
    )
    peak_tflops: float = field(
        default=0.0,
        metadata=_doc("peak TFLOP/s per device for MFU; 0 = 989 (H100 bf16) on cuda, none on cpu"),
    )
    progress: bool = field(default=True, metadata=_doc("show a progress bar on rank 0"))
    tensorboard: bool = field(
        default=True, metadata=_doc("also write TensorBoard events when installed")
    )
    dist_timeout_s: float = field(
        default=600.0, metadata=_doc("timeout of collectives under torchrun")
    )

    def __post_init__(self) -> None:
        for key in (
            "steps",
            "batch",
            "seq",
            "grad_accum",
            "spike_window",
            "eval_batches",
            "log_every",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in (
            "clip",
            "z_loss",
            "spike_factor",
            "eval_every",
            "ckpt_every",
            "keep_checkpoints",
            "spike_min_history",
            "spike_norm_factor",
            "peak_tflops",
        ):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.spike_factor and self.spike_factor <= 1:
            raise ValueError(
                f"train.spike_factor must be > 1 (or 0 = off), got {self.spike_factor}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"train.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.batch % self.grad_accum:
            raise ValueError(
                f"train.batch={self.batch} must be a multiple of train.grad_accum={self.grad_accum}"
            )
        if not self.dist_timeout_s > 0:
            raise ValueError(f"train.dist_timeout_s must be > 0, got {self.dist_timeout_s}")

    def micro_batch(self, world_size: int) -> int:
        """Sequences per forward on each rank."""
        per = world_size * self.grad_accum
        if self.batch % per:
            raise ValueError(
                f"train.batch={self.batch} must be a multiple of world_size × train.grad_accum"
                f" = {world_size} × {self.grad_accum}"
            )
        return self.batch // per


@dataclass(frozen=True)
class DataConfig:
    """What the command line trains on (the ``[data]`` table)."""

    shards: str = field(
        default="",
        metadata=_doc("directory of a token shard set (manifest.json) to train on; wins over tokens"),
    )
    val_shards: str = field(
        default="", metadata=_doc("shard set for validation (with data.shards; empty = none)")
    )
    tokens: str = field(
        default="",
        metadata=_doc(
            "token file: .npy, or raw .bin of token_dtype; empty = bytes of the stdlib's sources"
        ),
    )
    token_dtype: str = field(default="uint16", metadata=_doc("dtype of a raw .bin token file"))
    val_fraction: float = field(
        default=0.02, metadata=_doc("tail of the tokens held out for validation")
    )
    embedded_bytes: int = field(
        default=4_000_000, metadata=_doc("bytes of stdlib sources read for the embedded corpus")
    )
    tokenizer: str = field(
        default="",
        metadata=_doc("tokenizer.json copied beside the run; empty = UTF-8 bytes as ids"),
    )
    eos_id: int | None = field(
        default=None, metadata=_doc("document separator: positions restart after it (doc masking)")
    )
    shuffle: bool = field(default=True, metadata=_doc("shuffle training sequences each epoch"))

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.token_dtype not in ("uint8", "uint16", "int32", "uint32", "int64"):
            raise ValueError(
                f"data.token_dtype must be uint8, uint16, int32, uint32 or int64, got {self.token_dtype!r}"
            )
        if self.embedded_bytes < 1:
            raise ValueError(f"data.embedded_bytes must be >= 1, got {self.embedded_bytes}")


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": LoopConfig,
    "data": DataConfig,
}


@dataclass(frozen=True)
class TrainConfig:
    """A whole run: model, optimizer, schedule, loop and data."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.train.seq > self.model.max_seq_len:
            raise ValueError(
                f"train.seq={self.train.seq} exceeds model.max_seq_len={self.model.max_seq_len}"
            )
        self.schedule.factor(self.train.steps)  # schedule errors (warmup > steps) at load time
        if self.data.eos_id is not None and not 0 <= self.data.eos_id < self.model.vocab_size:
            raise ValueError(f"data.eos_id={self.data.eos_id} is outside model.vocab_size")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """From plain values (a parsed TOML document)."""
        parts = {}
        for section, value in d.items():
            if section not in SECTIONS:
                raise ValueError(f"{section}: unknown table; known tables: {', '.join(SECTIONS)}")
            if not isinstance(value, dict):
                raise TypeError(f"{section} must be a table, got {type(value).__name__}")
            parts[section] = (
                ModelConfig.from_dict(value)
                if section == "model"
                else dataclass_from_dict(SECTIONS[section], value, section)
            )
        return cls(**parts)

    @classmethod
    def load(
        cls, path: str | Path | None = None, overrides: list[str] | None = None
    ) -> TrainConfig:
        """A TOML file (or the defaults) with dotted overrides applied."""
        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ValueError(f"config file {str(path)!r} does not exist")
            with path.open("rb") as f:
                data = tomllib.load(f)
        return cls.from_dict(apply_overrides(data, overrides or []))

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def describe(cls) -> str:
        """Every knob: ``[table]`` headers, then ``name = default  # doc``."""
        lines = []
        for name, section in SECTIONS.items():
            lines.append(f"[{name}]")
            for f in dataclasses.fields(section):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                lines.append(f"{f.name} = {default!r}  # {f.metadata.get('doc', '')}")
            lines.append("")
        return "\n".join(lines)


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (``200``, ``1e-3``, ``true``,
    ``[1, 2]``, ``"x"``); anything else is a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``data`` with ``--section.key value`` (or ``--section.key=value``) applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or "." not in arg:
            raise ValueError(f"override {arg!r}: expected --section.key VALUE")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(overrides):
                raise ValueError(f"override {arg!r} has no value")
            value = overrides[i + 1]
            i += 1
        i += 1
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ValueError(
                f"{key}: unknown table {section!r}; known tables: {', '.join(SECTIONS)}"
            )
        if "." in name or not name:
            raise ValueError(f"{key}: expected --section.key")
        out.setdefault(section, {})[name] = parse_value(value)
    return out
