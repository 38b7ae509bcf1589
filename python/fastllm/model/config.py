"""``ModelConfig``: every knob of the decoder, with the named sizes.

A config is built from keyword arguments, a named size (``ModelConfig.named("125M")``),
a plain dict (``from_dict``, where unknown keys are errors), the ``[model]``
table of a TOML file (``from_toml``), or as the ``[model]`` section of a run
config (:mod:`fastllm.config`). Invalid values fail here, at build time,
with a :class:`~fastllm.config.ConfigError` that names the field.
``build()`` makes the :class:`~fastllm.model.decoder.Decoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastllm.config import ConfigError, Section, check, coerce, knob, read_toml


@dataclass(frozen=True)
class ModelConfig(Section):
    """A Llama-style decoder. The defaults are the ``tiny`` size."""

    table = "model"

    vocab_size: int = knob(2048, "tokens in the vocabulary (rows of the embedding)")
    dim: int = knob(64, "model width: embedding and residual stream size")
    n_layers: int = knob(4, "transformer blocks")
    n_heads: int = knob(4, "query heads; head_dim = dim // n_heads")
    n_kv_heads: int | None = knob(
        2, "key/value heads: n_heads = MHA, 1 = MQA, between = GQA; none = n_heads"
    )
    ffn_dim: int | None = knob(
        None, "SwiGLU hidden size; none = 8/3·dim rounded up to multiple_of"
    )
    multiple_of: int = knob(16, "rounding for the derived ffn_dim")
    max_seq_len: int = knob(256, "longest sequence; sizes the RoPE tables")
    rope_theta: float = knob(10000.0, "RoPE base frequency")
    norm_eps: float = knob(1e-5, "RMSNorm epsilon")
    tie_embeddings: bool = knob(True, "share the token embedding with the output head")
    qkv_bias: bool = knob(False, "biases on the q, k, v projections (Qwen style)")
    init_std: float = knob(0.02, "std of the normal init of embeddings and input projections")
    attention: Literal["auto", "flex", "dense"] = knob(
        "auto", "masked attention kernel: auto (flex on CUDA, else dense), flex (no CPU backward), dense"
    )

    def validate(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "multiple_of", "max_seq_len"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("n_kv_heads", "ffn_dim"):
            v = getattr(self, name)
            check(v is None or v >= 1, name, f"must be >= 1 or none, got {v}")
        for name in ("rope_theta", "norm_eps", "init_std"):
            check(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        check(self.dim % self.n_heads == 0, "n_heads", f"{self.n_heads} must divide model.dim={self.dim}")
        check(
            self.head_dim % 2 == 0,
            "dim",
            f"model.dim // model.n_heads = {self.head_dim} must be even for RoPE",
        )
        check(
            self.n_heads % self.kv_heads == 0,
            "n_kv_heads",
            f"{self.kv_heads} must divide model.n_heads={self.n_heads}",
        )

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``size`` picks a named size that the other keys override."""
        if "size" not in data:
            return data
        size = coerce(data.pop("size"), str, "size")
        if size not in SIZES:
            raise ConfigError("size", f"unknown size {size!r}; known: {', '.join(SIZES)}")
        return {**SIZES[size], **data}

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
        """One of :data:`SIZES` (``tiny``, ``125M``, ``350M``, ``1B``, ``7B``, and the
        planner's ``gpt3-175b`` and ``llama-70b``), with overrides."""
        return cls.from_dict({"size": size, **overrides})

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelConfig:
        """The ``[model]`` table of a TOML file (a model file or a whole run config)."""
        data = read_toml(path)
        if not isinstance(data.get("model"), dict):
            raise ConfigError("", f"{path}: no [model] table")
        return cls.from_dict(data["model"])

    @classmethod
    def load(cls, spec: str | Path, overrides=()) -> ModelConfig:  # type: ignore[override]
        """A named size or a path to a TOML file (its ``[model]`` table)."""
        if isinstance(spec, str) and spec in SIZES:
            return cls.named(spec)
        if not Path(spec).is_file():
            raise ConfigError(
                "", f"{str(spec)!r} is neither a model size ({', '.join(SIZES)}) nor a file"
            )
        return cls.from_toml(spec)


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
    # GPT-3 175B (Brown et al. 2020): 96 layers, width 12288, 96 heads (MHA),
    # the GPT-2 vocabulary, tied embeddings, context 2048. GPT-3's MLP is
    # 2 matrices d × 4d (8d² per layer); our SwiGLU has 3 matrices d × ffn, so
    # ffn = 8d/3 = 32768 (exact for d = 12288) gives the same 8d² and the same
    # count: 174.6B (GPT-3's 175B also counts its learned position embeddings).
    # For the planner; far too big to build on one machine.
    "gpt3-175b": dict(
        vocab_size=50257,
        dim=12288,
        n_layers=96,
        n_heads=96,
        n_kv_heads=96,
        ffn_dim=32768,
        max_seq_len=2048,
    ),
    # LLaMA-2-70B (Touvron et al. 2023): 80 layers, width 8192, GQA 64/8,
    # SwiGLU ffn 28672, 32k vocabulary, untied, context 4096: ~69.0B.
    "llama-70b": dict(
        vocab_size=32000,
        dim=8192,
        n_layers=80,
        n_heads=64,
        n_kv_heads=8,
        ffn_dim=28672,
        max_seq_len=4096,
        tie_embeddings=False,
    ),
}
