"""Generation with a KV cache: equal to transformers' greedy generate on the
export, cached logits equal to uncached ones, batched rows equal to rows alone,
the sampling filters against references, stop tokens, the CLI's config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fastllm.model import Decoder, ModelConfig
from fastllm.model.cache import KVCache
from fastllm.model.generate import (
    generate,
    next_tokens,
    top_k_filter,
    top_p_filter,
)
from fastllm.model.generate import main as generate_main

PROMPTS = [[5, 17, 3, 9, 40, 2, 11], [7], [60, 61, 62, 1], [33, 8, 8, 21, 70, 4, 19, 90, 2, 6]]


def peaked(seed: int = 0, **overrides) -> Decoder:
    """A small random decoder whose next-token distributions are far from
    uniform, so that greedy choices are not decided by rounding."""
    torch.manual_seed(seed)
    cfg = dict(vocab_size=96, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)
    model = Decoder(ModelConfig(**{**cfg, **overrides})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.normal_(std=0.3)
    return model


def left_padded(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, list[int]]:
    P = max(map(len, prompts))
    seq = torch.full((len(prompts), P), pad, dtype=torch.long)
    for b, p in enumerate(prompts):
        seq[b, P - len(p) :] = torch.tensor(p)
    return seq, [P - len(p) for p in prompts]


# ---- (a) the KV-cache equality test: transformers' greedy generate on the export ----


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(tie_embeddings=False, n_kv_heads=4, qkv_bias=True)],
    ids=["tied-gqa", "untied-mha-bias"],
)
def test_greedy_equals_transformers_generate_on_the_export(tmp_path, overrides):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    from fastllm.model.hf import export_hf

    model = peaked(**overrides)
    hf = transformers.LlamaForCausalLM.from_pretrained(export_hf(model, tmp_path / "hf")).eval()
    new = 24

    def theirs(prompts: list[list[int]], stop: int | None = None) -> list[list[int]]:
        seq, pads = left_padded(prompts)
        attention = (torch.arange(seq.shape[1])[None, :] >= torch.tensor(pads)[:, None]).long()
        with torch.no_grad():
            out = hf.generate(
                seq,
                attention_mask=attention,
                max_new_tokens=new,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=stop,
            )[:, seq.shape[1] :].tolist()
        if stop is not None:  # transformers pads a row after its eos: cut there
            out = [row[: row.index(stop) + 1] if stop in row else row for row in out]
        return out

    # Each prompt alone, then all of them as one left-padded batch.
    alone = [generate(model, [p], new, temperature=0)[0] for p in PROMPTS]
    assert len({t for row in alone for t in row}) > new  # not one token looping
    assert alone == [theirs([p])[0] for p in PROMPTS]
    assert generate(model, PROMPTS, new, temperature=0) == theirs(PROMPTS)
    assert generate(model, PROMPTS, new, temperature=0) == alone
    # A stop token that one row meets midway ends that row, in both.
    stop = alone[0][new // 2]
    ours = generate(model, PROMPTS, new, temperature=0, stop_tokens=[stop])
    assert ours == theirs(PROMPTS, stop)
    assert ours[0][-1] == stop and len(ours[0]) <= new // 2 + 1


# ---- (b) cached logits equal uncached logits ---------------------------------------


def test_cached_logits_equal_uncached_at_every_step():
    model = peaked()
    tokens = torch.randint(0, 96, (3, 20))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache.for_model(model, 3, 20)
        steps = [model(tokens[:, :6], cache=cache)]  # prefill, then one token a step
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(6, 20)]
        assert cache.length == 20
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
        # last_only is the last column, with or without a cache.
        torch.testing.assert_close(model(tokens, last_only=True), full[:, -1:])
        cache = KVCache.for_model(model, 3, 20)
        torch.testing.assert_close(
            model(tokens, cache=cache, last_only=True), full[:, -1:], rtol=1e-5, atol=1e-5
        )


def test_left_padded_rows_equal_each_prompt_alone():
    model = peaked()
    seq, pads = left_padded(PROMPTS)
    P, steps = seq.shape[1], 8
    follow = torch.randint(0, 96, (len(PROMPTS), steps))
    with torch.no_grad():
        cache = KVCache.for_model(model, len(PROMPTS), P + steps, start=pads)
        # Each row's true positions (RoPE scores depend only on differences,
        # so the logits below cannot tell a shifted row from a right one).
        for b, p in enumerate(PROMPTS):
            assert cache.positions(P)[b, pads[b] :].tolist() == list(range(len(p)))
        batched = [model(seq, cache=cache)]
        batched += [model(follow[:, t : t + 1], cache=cache) for t in range(steps)]
        batched = torch.cat(batched, dim=1)
        assert cache.positions(1)[:, 0].tolist() == [len(p) + steps for p in PROMPTS]
        for b, p in enumerate(PROMPTS):
            alone = model(torch.cat([torch.tensor([p]), follow[b : b + 1]], dim=1))[0]
            torch.testing.assert_close(batched[b, pads[b] :], alone, rtol=1e-5, atol=1e-5)
            assert torch.isfinite(batched[b]).all()  # pad slots too: no NaN to spread


def test_the_window_slides_past_max_seq_len_as_an_uncached_model_would():
    model = peaked(max_seq_len=16)

    def reference(prompt: list[int], n: int) -> list[int]:  # the uncached sliding window
        ids = list(prompt)
        for _ in range(n):
            with torch.no_grad():
                logits = model(torch.tensor([ids[-16:]]))[0, -1]
            ids.append(int(logits.argmax()))
        return ids[len(prompt) :]

    prompts = [list(range(1, 21)), [4, 5, 6]]  # the first is longer than the window already
    assert generate(model, prompts, 20, temperature=0) == [reference(p, 20) for p in prompts]


def test_a_cache_rejects_what_does_not_fit():
    model = peaked(max_seq_len=16)
    cache = KVCache.for_model(model, 1, 8)
    with pytest.raises(ValueError, match="KV cache full"):
        model(torch.zeros(1, 9, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="holds 1 rows"):
        model(torch.zeros(2, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="no doc_ids"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache, prefix_len=1)


# ---- (c) sampling ------------------------------------------------------------------


def nucleus_reference(probs: list[float], p: float) -> set[int]:
    """The smallest set of most likely tokens whose probability reaches p."""
    kept, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -probs[i]):
        if mass >= p:
            break
        kept.add(i)
        mass += probs[i]
    return kept


@pytest.mark.parametrize(
    ("p", "expected"), [(0.3, {3}), (0.5, {3, 0}), (0.8, {3, 0, 5}), (0.95, {3, 0, 5, 1, 4})]
)
def test_top_p_keeps_the_minimal_nucleus(p, expected):
    probs = [0.25, 0.08, 0.03, 0.4, 0.06, 0.18]  # ranked: 3, 0, 5, 1, 4, 2
    logits = torch.tensor([probs]).log()
    kept = set(torch.isfinite(top_p_filter(logits, p))[0].nonzero().view(-1).tolist())
    assert kept == expected == nucleus_reference(probs, p)
    # Draws stay inside the nucleus.
    g = torch.Generator().manual_seed(0)
    draws = next_tokens(logits.expand(500, -1), top_p=p, generator=g)
    assert set(draws.tolist()) <= expected


def test_filters_equal_transformers_warpers():
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(8, 96) * 3
    for p in (0.1, 0.5, 0.9):
        theirs = TopPLogitsWarper(p)(None, logits.clone())
        assert torch.equal(torch.isfinite(top_p_filter(logits, p)), torch.isfinite(theirs))
    for k in (1, 5, 50):
        theirs = TopKLogitsWarper(k)(None, logits.clone())
        assert torch.equal(top_k_filter(logits, k), theirs)


def test_top_k_1_is_greedy_and_sampling_is_seeded():
    model = peaked()
    greedy = generate(model, PROMPTS, 16, temperature=0)
    assert generate(model, PROMPTS, 16, temperature=1.5, top_k=1, seed=3) == greedy
    a = generate(model, PROMPTS, 16, temperature=1.0, top_p=0.9, seed=7)
    b = generate(model, PROMPTS, 16, temperature=1.0, top_p=0.9, seed=7)
    c = generate(model, PROMPTS, 16, temperature=1.0, top_p=0.9, seed=8)
    assert a == b != c
    g = torch.Generator().manual_seed(7)
    assert generate(model, PROMPTS, 16, temperature=1.0, top_p=0.9, generator=g) == a


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    for t in (0.5, 1.0, 2.0):
        freq = torch.bincount(next_tokens(logits, temperature=t, generator=g), minlength=4) / 4000
        want = torch.softmax(logits[0] / t, dim=-1)
        assert (freq - want).abs().max() < 0.03


def test_stop_tokens_end_rows_and_the_call():
    model = peaked()
    greedy = generate(model, PROMPTS, 16, temperature=0)
    stop = greedy[2][3]
    out = generate(model, PROMPTS, 16, temperature=0, stop_tokens=[stop])
    for row, full in zip(out, greedy, strict=True):
        if stop in full:  # a row ends at its first stop token, which it keeps
            assert row == full[: full.index(stop) + 1]
        else:
            assert row == full
    # Every row stops at once: the call ends there.
    firsts = [row[0] for row in greedy]
    assert generate(model, PROMPTS, 16, temperature=0, stop_tokens=firsts) == [[t] for t in firsts]


def test_generate_checks_its_arguments():
    model = peaked()
    assert generate(model, PROMPTS, 0) == [[], [], [], []]
    assert generate(model, [], 5) == []
    for kwargs, message in [
        (dict(temperature=-1.0), "temperature must be >= 0"),
        (dict(top_k=0), "top_k must be >= 1"),
        (dict(top_p=0.0), "top_p must be in"),
    ]:
        with pytest.raises(ValueError, match=message):
            generate(model, PROMPTS, 4, **kwargs)
    with pytest.raises(ValueError, match="prompt 1 has no tokens"):
        generate(model, [[1], []], 4)


# ---- (d) the CLI's config ----------------------------------------------------------


def test_cli_describe_lists_every_knob(capsys):
    assert generate_main(["--describe"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("[generate]")
    for knob in (
        "checkpoint",
        "prompt",
        "max_new_tokens = 100",
        "temperature = 0.8",
        "top_k = 50",
        "top_p = 1.0",
        "num_samples = 1",
        "seed = 0",
        "device",
    ):
        assert f"\n{knob}" in text
    assert all("  # " in line for line in text.splitlines()[1:] if line)


def test_cli_names_the_wrong_field(capsys):
    assert generate_main(["--checkpoint", "x", "--generate.top_kk", "3"]) == 2
    assert "generate.top_kk: unknown key" in capsys.readouterr().err
    assert generate_main(["--checkpoint", "x", "--top-p", "1.5"]) == 2
    assert "generate.top_p: must be in (0, 1]" in capsys.readouterr().err
    assert generate_main(["--checkpoint", "x", "--temperature", "hot"]) == 2
    assert "generate.temperature: expected a number" in capsys.readouterr().err
    assert generate_main([]) == 2
    assert "generate.checkpoint: required" in capsys.readouterr().err


def test_python_m_fastllm_generate_still_runs():
    out = subprocess.run(
        [sys.executable, "-m", "fastllm.generate", "--describe"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "max_new_tokens = 100" in out
