"""Hugging Face export: transformers' LlamaForCausalLM loads it with the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from fastllm.model import Decoder, ModelConfig
from fastllm.model.hf import export_hf

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")


@pytest.mark.parametrize(
    "overrides",
    [
        dict(tie_embeddings=True, n_kv_heads=2),
        dict(tie_embeddings=False, n_kv_heads=1, qkv_bias=True, rope_theta=500000.0),
        dict(tie_embeddings=False, n_kv_heads=4, ffn_dim=48),
    ],
    ids=["tied-gqa", "untied-mqa-bias", "untied-mha-ffn"],
)
def test_transformers_loads_the_export_with_the_same_logits(tmp_path, overrides):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, max_seq_len=64, **overrides)
    model = Decoder(cfg).eval()
    with torch.no_grad():  # move every weight off its init (norms off 1, biases off 0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    out = export_hf(model, tmp_path / "hf")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    hf = transformers.LlamaForCausalLM.from_pretrained(out).eval()
    tokens = torch.randint(0, 96, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens).logits, model(tokens), rtol=1e-4, atol=1e-5)
    assert hf.config.tie_word_embeddings == cfg.tie_embeddings
    assert sum(p.numel() for p in hf.parameters()) >= model.num_params()


def test_export_saves_the_tokenizer_beside_the_model(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from fastllm.tokenizer import Tokenizer

    hf_bpe = HFTokenizer(models.BPE())
    hf_bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf_bpe.train_from_iterator(["def f(x):\n    return x + 1\n"] * 20, trainer)
    hf_bpe.save(str(tmp_path / "hf_tokenizer.json"))
    tok = Tokenizer.from_file(tmp_path / "hf_tokenizer.json")
    tok.save(tmp_path / "tokenizer.json")
    model = Decoder(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=4))
    out = export_hf(
        model, tmp_path / "hf", tokenizer_path=tmp_path / "tokenizer.json", dtype="bfloat16"
    )
    assert (out / "tokenizer.json").read_text() == (tmp_path / "tokenizer.json").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["eos_token_id"] == tok.special_tokens["<|endoftext|>"]
    hf_tok = transformers.PreTrainedTokenizerFast.from_pretrained(out)
    assert hf_tok.encode("return x") == tok.encode("return x")
    hf = transformers.LlamaForCausalLM.from_pretrained(out)
    assert hf.model.embed_tokens.weight.dtype == torch.bfloat16
