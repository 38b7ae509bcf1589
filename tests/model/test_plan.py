"""The planner against a hand calculation, the built model, and autograd."""

from __future__ import annotations

import pytest
import torch

from fastllm.model import SIZES, Decoder, ModelConfig, cross_entropy
from fastllm.model.plan import activation_bytes, main, param_counts, plan

# The hand calculation of issue 7: H=4096, FFN=11008, L=32, V=65536, MHA, untied.
HAND = ModelConfig(
    vocab_size=65536, dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, ffn_dim=11008,
    max_seq_len=4096, tie_embeddings=False,
)  # fmt: skip


def test_7b_parameters_by_hand():
    p = param_counts(HAND)
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008  # q, k, v, o + gate, up, down
    assert p["attention"] + p["mlp"] == 32 * per_layer == 6_476_005_376
    assert p["embedding"] == p["head"] == 65536 * 4096
    assert p["norms"] == (2 * 32 + 1) * 4096
    assert p["total"] == 7_013_142_528  # "about 7B"


def test_7b_needs_112_gb_under_ddp():
    pl = plan(HAND, gpus=8)
    assert pl.model_states["ddp"] == 16 * 7_013_142_528
    assert pl.model_states["ddp"] / 1e9 == pytest.approx(112.2, abs=0.05)
    phi, n = 7_013_142_528, 8
    assert pl.model_states["zero1"] == pytest.approx(4 * phi + 12 * phi / n)
    assert pl.model_states["zero2"] == pytest.approx(2 * phi + 14 * phi / n)
    assert pl.model_states["zero3"] == pytest.approx(16 * phi / n)


def test_flops_tokens_and_time_by_hand():
    pl = plan(HAND, seq_len=2048, gpus=8, mfu=0.5, tokens=1e12)
    n_mm = 6_476_005_376 + 65536 * 4096  # matmul weights: layers and the head
    want = 6 * n_mm + 12 * 32 * 32 * 128 * 2048
    assert pl.flops["total"] == want
    assert pl.chinchilla_tokens == 20 * 7_013_142_528
    assert pl.seconds == pytest.approx(1e12 * want / (8 * 989e12 * 0.5))


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("variant", [{}, {"qkv_bias": True, "tie_embeddings": False}])
def test_param_counts_match_the_model(size, variant):
    cfg = ModelConfig.named(size, **variant)
    with torch.device("meta"):
        model = Decoder(cfg)
    assert param_counts(cfg)["total"] == model.num_params()


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_activation_bytes_match_what_autograd_saves(n_kv_heads):
    # A bf16 model on CPU uses a fused attention (no T×T scores), as the planner assumes.
    cfg = ModelConfig(
        vocab_size=256, dim=64, n_layers=3, n_heads=4, n_kv_heads=n_kv_heads, max_seq_len=64
    )
    model = Decoder(cfg).to(torch.bfloat16)
    skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            saved[s.data_ptr()] = s.nbytes()
        return t

    tokens = torch.randint(0, 256, (2, 64))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cross_entropy(model(tokens), tokens)
    want = activation_bytes(cfg, batch=2, seq_len=64, checkpointing=False)
    assert sum(saved.values()) == pytest.approx(want, rel=0.02)


def test_checkpointing_shrinks_activations():
    full = activation_bytes(HAND, 1, 4096, checkpointing=False)
    ckpt = activation_bytes(HAND, 1, 4096, checkpointing=True)
    assert ckpt < full / 5
    assert activation_bytes(HAND, 2, 4096, False) == 2 * full


def test_cli(capsys, tmp_path):
    assert main(["--config", "7B", "--gpus", "8", "--seq", "2048", "--checkpointing"]) == 0
    out = capsys.readouterr().out
    assert "7,013,142,528" in out and "112.21 GB" in out and "zero3" in out
    toml = tmp_path / "m.toml"
    toml.write_text('[model]\nsize = "125M"\nn_layers = 2\n')
    assert main(["--config", str(toml)]) == 0
    assert "layers 2" in capsys.readouterr().out
    assert main(["--config", "7B", "--seq", "9000"]) == 2
    assert "max_seq_len=4096" in capsys.readouterr().err
    assert main(["--config", "13B"]) == 2
    assert "plan.model: '13B' is neither a model size" in capsys.readouterr().err
