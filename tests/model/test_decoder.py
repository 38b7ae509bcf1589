"""The decoder: it learns, GQA is MHA with shared kv heads, RoPE is relative,
tying, init, meta-device materialization."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastllm.model import Decoder, ModelConfig, cross_entropy
from fastllm.model.norms import RMSNorm

SMALL = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)


def test_tiny_model_overfits_a_small_batch():
    torch.manual_seed(0)
    model = Decoder(ModelConfig(**SMALL))
    data = torch.randint(0, 64, (4, 33))
    x, y = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(150):
        loss = cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.5  # ≈ ln 64 = 4.16 at init
    assert loss.item() < 0.1


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_repeated_kv_heads(n_kv_heads):
    torch.manual_seed(0)
    gqa = Decoder(ModelConfig(**{**SMALL, "n_kv_heads": n_kv_heads})).double()
    mha = Decoder(ModelConfig(**{**SMALL, "n_kv_heads": 4})).double()
    rep = 4 // n_kv_heads
    hd = SMALL["dim"] // 4
    state = {}
    for name, t in gqa.state_dict().items():
        if name.endswith(("attention.wk.weight", "attention.wv.weight")):
            # Rows are [kv_head, head_dim]; query head h reads kv head h // rep.
            t = t.view(n_kv_heads, hd, -1).repeat_interleave(rep, dim=0).reshape(4 * hd, -1)
        state[name] = t
    mha.load_state_dict(state)
    tokens = torch.randint(0, 64, (2, 10))
    docs = torch.tensor([[0] * 4 + [1] * 6, [0] * 10])
    torch.testing.assert_close(gqa(tokens), mha(tokens))
    torch.testing.assert_close(gqa(tokens, doc_ids=docs), mha(tokens, doc_ids=docs))


def test_rope_is_relative():
    torch.manual_seed(0)
    model = Decoder(ModelConfig(**SMALL)).double()
    tokens = torch.randint(0, 64, (2, 12))
    shifted = torch.arange(12).expand(2, 12) + torch.tensor([[7], [40]])
    torch.testing.assert_close(
        model(tokens, position_ids=shifted, doc_ids=torch.zeros(2, 12, dtype=torch.long)),
        model(tokens),
    )
    # Positions matter: a permutation of positions changes the output.
    perm = torch.arange(12).flip(0).expand(2, 12)
    assert (
        model(tokens, position_ids=perm, doc_ids=torch.zeros(2, 12, dtype=torch.long))
        - model(tokens)
    ).abs().max() > 1e-6


def test_rope_theta_is_used():
    torch.manual_seed(0)
    a = Decoder(ModelConfig(**SMALL))
    b = Decoder(ModelConfig(**{**SMALL, "rope_theta": 500000.0}))
    b.load_state_dict(a.state_dict())
    tokens = torch.randint(0, 64, (1, 12))
    assert (a(tokens) - b(tokens)).abs().max() > 1e-5


def test_tied_and_untied_embeddings():
    tied = Decoder(ModelConfig(**SMALL))
    untied = Decoder(ModelConfig(**{**SMALL, "tie_embeddings": False}))
    assert tied.output.weight is tied.tok_embeddings.weight
    assert untied.output.weight is not untied.tok_embeddings.weight
    assert untied.num_params() - tied.num_params() == 64 * 32
    assert tied.num_params(exclude_embeddings=True) == tied.num_params() - 64 * 32
    assert "output.weight" not in dict(tied.named_parameters())


def test_init_weights_scales_residual_projections_and_materializes_meta():
    cfg = ModelConfig(**{**SMALL, "dim": 128, "n_heads": 4, "n_layers": 8, "qkv_bias": True})
    with torch.device("meta"):
        model = Decoder(cfg)
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights(buffer_device="cpu")
    # to_empty() unties shared weights; init_weights must tie them again
    # (else the head is uninitialized memory).
    assert model.output.weight is model.tok_embeddings.weight
    block = model.layers["0"]
    assert abs(block.attention.wq.weight.std().item() - 0.02) < 0.002
    assert abs(block.feed_forward.w2.weight.std().item() - 0.02 / 4) < 0.0005
    assert torch.equal(block.attention.wq.bias, torch.zeros_like(block.attention.wq.bias))
    assert torch.equal(model.norm.weight, torch.ones(128))
    out = model(torch.randint(0, 64, (1, 8)))
    assert torch.isfinite(out).all()
    # Near-uniform predictions at init: loss close to ln(vocab).
    loss = cross_entropy(out, torch.randint(0, 64, (1, 8)))
    assert abs(loss.item() - torch.log(torch.tensor(64.0)).item()) < 0.1


def test_rmsnorm_matches_formula():
    x = torch.randn(3, 5, 16)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), want)


def test_attention_uses_sdpa_result():
    # The model's attention equals an explicit softmax(QKᵀ/√d)V with a causal mask.
    torch.manual_seed(0)
    model = Decoder(ModelConfig(**{**SMALL, "n_kv_heads": 4})).double()
    attn = model.layers["0"].attention
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    cos, sin = model.rope_cos[:6][None], model.rope_sin[:6][None]
    from fastllm.model.masks import AttentionMask
    from fastllm.model.rope import apply_rope

    got = attn(x, (cos, sin), AttentionMask.build(1, 6, "cpu"))
    q = apply_rope(attn.wq(x).view(1, 6, 4, 8), cos, sin).transpose(1, 2)
    k = apply_rope(attn.wk(x).view(1, 6, 4, 8), cos, sin).transpose(1, 2)
    v = attn.wv(x).view(1, 6, 4, 8).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / 8**0.5
    s = s.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    want = attn.wo((F.softmax(s, -1) @ v).transpose(1, 2).reshape(1, 6, 32))
    torch.testing.assert_close(got, want)


def test_sequence_longer_than_max_is_an_error():
    model = Decoder(ModelConfig(**{**SMALL, "max_seq_len": 8}))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
