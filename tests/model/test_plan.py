"""The planner against a hand calculation, the built model, and autograd."""

from __future__ import annotations

import pytest
import torch

from fastllm.config import ConfigError
from fastllm.model import SIZES, Decoder, ModelConfig, cross_entropy
from fastllm.model.plan import (
    activation_bytes,
    bubble_fraction,
    main,
    param_counts,
    plan,
    stage_activation_bytes,
    stage_params,
)

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


# A small config for the 3-D hand calculation: 4 layers, GQA 4/2, untied.
SMALL = ModelConfig(
    vocab_size=100, dim=64, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=128,
    max_seq_len=64, tie_embeddings=False,
)  # fmt: skip


def test_stage_params_by_hand_under_tp_and_pp():
    attn = (64 * 64 + 2 * 64 * 32 + 64 * 64) // 2  # q, k, v, o over tp = 2
    mlp = 3 * 64 * 128 // 2
    layer = attn + mlp + 2 * 64  # two norms, replicated
    vocab = 50 * 64  # 100 rows over tp = 2
    first, last = stage_params(SMALL, tp=2, pp=2)
    assert first["layers"] == last["layers"] == 2
    assert first["total"] == vocab + 2 * layer == 40_320
    assert last["total"] == 2 * layer + 64 + vocab == 40_384  # final norm + head
    assert stage_params(SMALL)[0]["total"] == param_counts(SMALL)["total"]
    # A tied head is one tensor on one stage, a copy on the last stage under pp.
    tied = SMALL.replace(tie_embeddings=True)
    assert stage_params(tied)[0]["head"] == 0 and stage_params(tied, pp=2)[1]["head"] == 100 * 64


def test_3d_states_by_hand():
    pl = plan(SMALL, gpus=8, tp=2, pp=2, microbatches=4, zero=1)
    assert pl.dp == 2 and pl.largest_stage.index == 1
    phi, n = 40_384, 2
    assert pl.model_states["ddp"] == 16 * phi
    assert pl.model_states["zero1"] == pytest.approx(4 * phi + 12 * phi / n)
    assert pl.model_states["zero2"] == pytest.approx(2 * phi + 14 * phi / n)
    assert pl.model_states["zero3"] == pytest.approx(16 * phi / n)
    off = plan(SMALL, gpus=8, tp=2, pp=2, offload="optimizer")
    st = off.stages[1]
    assert st.gpu_states["zero1"] == pytest.approx(4 * phi)
    assert st.cpu_states["zero1"] == pytest.approx(12 * phi / n)
    every = plan(SMALL, gpus=8, tp=2, pp=2, offload="all").stages[1]
    assert every.gpu_states["zero3"] == 0 and every.cpu_states["zero3"] == pytest.approx(16 * phi / n)


def test_3d_activations_by_hand():
    layer = 2 * (8 * 64 + 4) + 2 * (2 * 64 + 2 * 32) + 4 * 4 + 8 * 128
    head = 8 * 64 + 4 + 4 * 100 + 8
    tokens = 2 * 64
    first, last = stage_activation_bytes(SMALL, 2, 64, False, tp=2, pp=2, microbatches=4)
    assert first == tokens * 2 * 2 * layer / 2  # min(p, m) = 2 micro-batches × 2 layers, / tp
    assert last == tokens * (1 * 2 * layer + head) / 2
    ck = stage_activation_bytes(SMALL, 2, 64, True, tp=1, pp=2, microbatches=1)
    assert ck[0] == tokens * (1 * 2 * 2 * 64 + layer)  # m = 1: one in flight
    for ckpt in (False, True):
        assert stage_activation_bytes(SMALL, 2, 64, ckpt) == [activation_bytes(SMALL, 2, 64, ckpt)]
    pl = plan(SMALL, batch=2, seq_len=64, gpus=8, tp=2, pp=2, microbatches=4)
    assert pl.activations == first and pl.worst_stage().index == 0


def test_bubble_and_tokens_per_second():
    assert bubble_fraction(1, 8) == 0
    assert bubble_fraction(8, 64) == pytest.approx(7 / 71)
    assert bubble_fraction(2, 4) == pytest.approx(1 / 5)
    pl = plan(SMALL, gpus=8, tp=2, pp=2, microbatches=4, mfu=0.5)
    assert pl.bubble == pytest.approx(1 / 5)
    assert pl.tokens_per_second == pytest.approx(8 * 989e12 * 0.5 / pl.flops["total"])


def test_seed_parameter_counts():
    assert param_counts(ModelConfig.named("gpt3-175b"))["total"] == pytest.approx(175e9, rel=0.02)
    assert param_counts(ModelConfig.named("llama-70b"))["total"] == pytest.approx(69e9, rel=0.02)


def test_cli_prints_the_seed_examples(capsys):
    argv = ["--config", "gpt3-175b", "--gpus", "1024", "--tp", "8", "--pp", "8", "--microbatches", "64"]
    assert main([*argv, "--checkpointing"]) == 0
    out = capsys.readouterr().out
    assert "1024 GPU(s) = tp 8 × pp 8 × dp 16" in out and "7/71 = 9.9%" in out
    assert "must fit" in out and "per GPU under zero1" in out and "per GPU" in out
    assert main(["--config", "llama-70b", "--gpus", "64", "--tp", "8", "--pp", "2", "--offload", "optimizer"]) == 0
    out = capsys.readouterr().out
    assert "64 GPU(s) = tp 8 × pp 2 × dp 4" in out and "CPU states" in out and "on the CPU" in out
    assert "1/3 = 33.3%" in out  # m defaults to pp


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--config", "gpt3-175b", "--gpus", "1000", "--tp", "8", "--pp", "8"], "plan.gpus"),
        (["--config", "gpt3-175b", "--gpus", "64", "--tp", "8", "--pp", "2", "--dp", "2"], "plan.gpus"),
        (["--config", "gpt3-175b", "--gpus", "7", "--tp", "7"], "plan.tp"),
        (["--config", "tiny", "--gpus", "8", "--pp", "8"], "plan.pp"),
        (["--config", "tiny", "--zero", "4"], "plan.zero"),
        (["--config", "tiny", "--offload", "disk"], "plan.offload"),
    ],
)
def test_layout_errors_name_the_field(capsys, argv, field):
    assert main(argv) == 2
    assert field in capsys.readouterr().err


def test_layout_errors_from_the_function():
    with pytest.raises(ConfigError, match="plan.tp"):
        plan(SMALL, gpus=8, tp=8)  # 4 heads
    with pytest.raises(ConfigError, match="plan.pp"):
        plan(SMALL, gpus=8, pp=8)  # 4 layers
    with pytest.raises(ConfigError, match="plan.gpus"):
        plan(SMALL, gpus=6, tp=2, pp=2)


def test_interleaved_stages_shrink_the_bubble():
    from fastllm.model.plan import bubble_fraction

    assert bubble_fraction(4, 8) == pytest.approx(3 / 11)
    assert bubble_fraction(4, 8, virtual=2) == pytest.approx(3 / 19)
    assert main(["--config", "gpt3-175b", "--gpus", "1024", "--tp", "8", "--pp", "8", "--microbatches", "64", "--virtual", "2"]) == 0
    with pytest.raises(ConfigError, match="plan.pp_virtual"):
        plan(SMALL, gpus=4, pp=2, virtual=SMALL.n_layers)
