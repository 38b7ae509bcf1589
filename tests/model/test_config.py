"""ModelConfig: defaults, named sizes, validation that names the field, TOML files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastllm.config import ConfigError
from fastllm.model import SIZES, Decoder, ModelConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"


def test_defaults_are_tiny_and_tiny_is_small():
    assert ModelConfig() == ModelConfig.named("tiny")
    n = Decoder(ModelConfig.named("tiny")).num_params()
    assert 100_000 < n < 1_000_000


@pytest.mark.parametrize(
    "size, low, high",
    [("125M", 110e6, 140e6), ("350M", 330e6, 380e6), ("1B", 0.95e9, 1.25e9), ("7B", 6.8e9, 7.2e9)],
)
def test_named_sizes_have_their_size(size, low, high):
    with torch.device("meta"):
        n = Decoder(ModelConfig.named(size)).num_params()
    assert low < n < high


def test_llama_ffn_rounding():
    # 8/3 · 4096 = 10922.7, rounded up to a multiple of 256 = 11008 (Llama 7B).
    assert ModelConfig.named("7B").hidden_dim == 11008
    assert ModelConfig(dim=768, n_heads=12, n_kv_heads=12).hidden_dim == 2048


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="model.n_layer: unknown key"):
        ModelConfig.from_dict({"n_layer": 3})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="model.dim: expected an integer, got '64'"):
        ModelConfig.from_dict({"dim": "64"})
    with pytest.raises(ConfigError, match="model.tie_embeddings: expected true or false"):
        ModelConfig.from_dict({"tie_embeddings": 1})
    # An int where a float is expected is fine, and stored as a float.
    assert ModelConfig.from_dict({"rope_theta": 500000}).rope_theta == 500000.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_kv_heads": 3}, "model.n_kv_heads"),
        ({"n_heads": 5}, "model.n_heads"),
        ({"dim": 0}, "model.dim"),
        ({"rope_theta": 0.0}, "model.rope_theta"),
        ({"attention": "fast"}, "model.attention"),
        ({"dim": 12, "n_heads": 4, "n_kv_heads": 4}, "model.dim // model.n_heads"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.").replace("/", "/")):
        ModelConfig(**kwargs)


def test_size_key_with_overrides():
    c = ModelConfig.from_dict({"size": "125M", "n_layers": 2})
    assert c.dim == 768 and c.n_layers == 2
    with pytest.raises(ValueError, match="model.size"):
        ModelConfig.from_dict({"size": "3B"})


@pytest.mark.parametrize("size", list(SIZES))
def test_toml_files_mirror_named_sizes(size):
    assert ModelConfig.load(CONFIGS / f"{size}.toml") == ModelConfig.named(size)
    assert ModelConfig.load(size) == ModelConfig.named(size)


def test_toml_without_model_table(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[train]\nsteps = 3\n")
    with pytest.raises(ValueError, match=r"no \[model\] table"):
        ModelConfig.from_toml(p)
    p.write_text("[model]\ndim = 64\nheads = 4\n")
    with pytest.raises(ValueError, match="model.heads: unknown key"):
        ModelConfig.from_toml(p)


def test_every_field_is_documented():
    text = ModelConfig.describe()
    assert all("#" in line and line.split("#", 1)[1].strip() for line in text.splitlines())
    assert "n_kv_heads" in text
