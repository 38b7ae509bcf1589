"""``ModelConfig``: every knob of the decoder, with the named sizes.

A config is built from keyword arguments, a named size (``ModelConfig.named("125M")``),
a plain dict (``from_dict``, where unknown keys are errors) or the ``[model]``
table of a TOML file (``from_toml``). Invalid values fail here, at build time,
with a message that names the field.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder. The defaults are the ``tiny`` size."""

    vocab_size: int = field(
        default=2048, metadata=_doc("tokens in the vocabulary (rows of the embedding)")
    )
    dim: int = field(default=64, metadata=_doc("model width: embedding and residual stream size"))
    n_layers: int = field(default=4, metadata=_doc("transformer blocks"))
    n_heads: int = field(default=4, metadata=_doc("query heads; head_dim = dim // n_heads"))
    n_kv_heads: int | None = field(
        default=2,
        metadata=_doc("key/value heads: n_heads = MHA, 1 = MQA, between = GQA; None = n_heads"),
    )
    ffn_dim: int | None = field(
        default=None, metadata=_doc("SwiGLU hidden size; None = 8/3·dim rounded up to multiple_of")
    )
    multiple_of: int = field(default=16, metadata=_doc("rounding for the derived ffn_dim"))
    max_seq_len: int = field(default=256, metadata=_doc("longest sequence; sizes the RoPE tables"))
    rope_theta: float = field(default=10000.0, metadata=_doc("RoPE base frequency"))
    norm_eps: float = field(default=1e-5, metadata=_doc("RMSNorm epsilon"))
    tie_embeddings: bool = field(
        default=True, metadata=_doc("share the token embedding with the output head")
    )
    qkv_bias: bool = field(
        default=False, metadata=_doc("biases on the q, k, v projections (Qwen style)")
    )
    init_std: float = field(
        default=0.02, metadata=_doc("std of the normal init of embeddings and input projections")
    )
    attention: str = field(
        default="auto",
        metadata=_doc(
            "masked attention kernel: auto (flex on CUDA, else dense), flex (no CPU backward), dense"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "multiple_of", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_kv_heads", "ffn_dim"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"model.{name} must be >= 1 or None, got {v}")
        for name in ("rope_theta", "norm_eps", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"model.{name} must be > 0, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"model.n_heads={self.n_heads} must divide model.dim={self.dim}")
        if self.head_dim % 2:
            raise ValueError(f"model.dim // model.n_heads = {self.head_dim} must be even for RoPE")
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"model.n_kv_heads={self.kv_heads} must divide model.n_heads={self.n_heads}"
            )
        if self.attention not in ("auto", "flex", "dense"):
            raise ValueError(f"model.attention must be auto, flex or dense, got {self.attention!r}")

    # Derived sizes ------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_dim(self) -> int:
        """The SwiGLU hidden size actually used."""
        if self.ffn_dim is not None:
            return self.ffn_dim
        raw = 8 * self.dim / 3
        return self.multiple_of * math.ceil(raw / self.multiple_of)

    # Construction -------------------------------------------------------------

    @classmethod
    def named(cls, size: str, **overrides: Any) -> ModelConfig:
        """One of :data:`SIZES` (``tiny``, ``125M``, ``350M``, ``1B``, ``7B``), with overrides."""
        if size not in SIZES:
            raise ValueError(f"model.size: unknown size {size!r}; known: {', '.join(SIZES)}")
        return cls.from_dict({**SIZES[size], **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From plain values; ``size`` picks a named size that the other keys override.
        Unknown keys and wrongly typed values are errors that name the key."""
        d = dict(d)
        size = d.pop("size", None)
        if size is not None:
            if not isinstance(size, str) or size not in SIZES:
                raise ValueError(f"model.size: unknown size {size!r}; known: {', '.join(SIZES)}")
            d = {**SIZES[size], **d}
        return dataclass_from_dict(cls, d, "model")

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelConfig:
        """The ``[model]`` table of a TOML file (a model file or a whole run config)."""
        path = Path(path)
        with path.open("rb") as f:
            data = tomllib.load(f)
        if "model" not in data or not isinstance(data["model"], dict):
            raise ValueError(f"{path}: no [model] table")
        return cls.from_dict(data["model"])

    @classmethod
    def load(cls, spec: str | Path) -> ModelConfig:
        """A named size or a path to a TOML file."""
        if isinstance(spec, str) and spec in SIZES:
            return cls.named(spec)
        path = Path(spec)
        if not path.is_file():
            raise ValueError(
                f"model config {str(spec)!r} is neither a size ({', '.join(SIZES)}) nor a file"
            )
        return cls.from_toml(path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> str:
        """One line per knob: name, default, doc."""
        return "\n".join(
            f"{f.name} = {f.default!r}  # {f.metadata['doc']}" for f in dataclasses.fields(cls)
        )


T = typing.TypeVar("T")


def dataclass_from_dict(cls: type[T], d: dict[str, Any], section: str) -> T:
    """Build the config dataclass ``cls`` from plain values (a TOML table).
    Unknown keys and wrongly typed values are errors naming ``section.key``;
    ints are accepted for floats, lists for tuples."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in d.items():
        if key not in names:
            raise ValueError(
                f"{section}.{key}: unknown key; known keys: {', '.join(sorted(names))}"
            )
        out[key] = _check_type(f"{section}.{key}", value, hints[key])
    return cls(**out)


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint`` (int → float, list → tuple), or a TypeError naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            elems = [args[0]] * len(value)
        else:
            elems = list(args)
            if len(value) != len(elems):
                raise TypeError(f"{name} must have {len(elems)} items, got {len(value)}")
        return tuple(
            _check_type(f"{name}[{i}]", v, t)
            for i, (v, t) in enumerate(zip(value, elems, strict=True))
        )
    allowed = tuple(a for a in args if a is not type(None)) if args else (hint,)
    if value is None:
        if type(None) in args:
            return None
        raise TypeError(f"{name} must not be None")
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is str and isinstance(value, str):
            return value
    want = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise TypeError(f"{name} must be {want}, got {type(value).__name__} {value!r}")


# The named sizes. configs/model/<size>.toml mirror these (a test keeps them equal).
SIZES: dict[str, dict[str, Any]] = {
    # ~0.32M parameters: trains on one CPU core in seconds.
    "tiny": {},
    # GPT-3 Small shape with a GPT-2-sized vocabulary: ~124M.
    "125M": dict(
        vocab_size=50304,
        dim=768,
        n_layers=12,
        n_heads=12,
        n_kv_heads=12,
        ffn_dim=2048,
        max_seq_len=2048,
    ),
    # GPT-3 Medium shape: ~360M.
    "350M": dict(
        vocab_size=50304,
        dim=1024,
        n_layers=24,
        n_heads=16,
        n_kv_heads=16,
        multiple_of=256,
        max_seq_len=2048,
    ),
    # Llama-3.2-1B shape (GQA 32/8, tied) with a 64k vocabulary: ~1.1B.
    "1B": dict(
        vocab_size=65536,
        dim=2048,
        n_layers=16,
        n_heads=32,
        n_kv_heads=8,
        ffn_dim=8192,
        max_seq_len=4096,
        rope_theta=500000.0,
    ),
    # Llama-1/2-7B shape (MHA, untied) with a 64k vocabulary: ~7.0B.
    "7B": dict(
        vocab_size=65536,
        dim=4096,
        n_layers=32,
        n_heads=32,
        n_kv_heads=32,
        multiple_of=256,
        max_seq_len=4096,
        tie_embeddings=False,
    ),
}
