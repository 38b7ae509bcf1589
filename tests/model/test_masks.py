"""Masks against naive references: an explicit-loop attention, and running each
packed document on its own."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.model import AttentionMask, Decoder, ModelConfig, dense_mask, doc_ids_from_positions
from fastllm.model.masks import positions_from_doc_ids


def allowed(i: int, j: int, doc: list[int] | None, prefix: int | None) -> bool:
    """The rule, spelled out: causal, or both inside the prefix; never across documents."""
    ok = j <= i or (prefix is not None and i < prefix and j < prefix)
    if doc is not None:
        ok = ok and doc[i] == doc[j]
    return ok


def naive_attention(q, k, v, doc_ids=None, prefix=None):
    """Loop over every (batch, head, query) row; softmax over the allowed keys only."""
    B, H, T, D = q.shape
    rep = H // k.shape[1]
    out = torch.zeros_like(q)
    for b in range(B):
        doc = doc_ids[b].tolist() if doc_ids is not None else None
        p = int(prefix[b]) if prefix is not None else None
        for h in range(H):
            for i in range(T):
                js = [j for j in range(T) if allowed(i, j, doc, p)]
                s = torch.stack([q[b, h, i] @ k[b, h // rep, j] for j in js]) / math.sqrt(D)
                w = torch.softmax(s, dim=0)
                out[b, h, i] = sum(w[n] * v[b, h // rep, j] for n, j in enumerate(js))
    return out


def random_docs(gen: torch.Generator, B: int, T: int) -> torch.Tensor:
    return torch.randint(0, 4, (B, T), generator=gen).sort(dim=1).values


def qkv(gen, B=2, H=4, KV=2, T=12, D=8):
    return (
        torch.randn(B, H, T, D, generator=gen, dtype=torch.float64),
        torch.randn(B, KV, T, D, generator=gen, dtype=torch.float64),
        torch.randn(B, KV, T, D, generator=gen, dtype=torch.float64),
    )


def build(q, doc_ids=None, prefix=None, kernel="dense"):
    return AttentionMask.build(
        q.shape[0], q.shape[2], "cpu", doc_ids=doc_ids, prefix_len=prefix, kernel=kernel
    )


@pytest.mark.parametrize("kind", ["causal", "prefix", "docs", "docs+prefix"])
def test_dense_attention_equals_loops(kind):
    gen = torch.Generator().manual_seed(0)
    q, k, v = qkv(gen)
    B, T = q.shape[0], q.shape[2]
    docs = random_docs(gen, B, T) if "docs" in kind else None
    prefix = torch.tensor([5, 0]) if "prefix" in kind else None
    got = build(q, docs, prefix).attend(q, k, v)
    torch.testing.assert_close(got, naive_attention(q, k, v, docs, prefix))


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_equals_dense():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (t.float() for t in qkv(gen, T=16))
    docs = random_docs(gen, 2, 16)
    prefix = torch.tensor([3, 9])
    for d, p in [(docs, None), (None, prefix), (docs, prefix)]:
        want = build(q, d, p, "dense").attend(q, k, v)
        got = build(q, d, p, "flex").attend(q, k, v)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # Through the model: the config's kernel switch (flex has no CPU backward).
    dense, flex = small_model(attention="dense").float(), small_model(attention="flex").float()
    tokens = torch.randint(0, 97, (2, 16), generator=gen)
    with torch.no_grad():
        for kw in ({"doc_ids": docs}, {"prefix_len": prefix}):
            torch.testing.assert_close(
                flex(tokens, **kw), dense(tokens, **kw), atol=1e-5, rtol=1e-5
            )


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    prefix=st.one_of(st.none(), st.integers(0, 20)),
)
def test_dense_mask_is_the_rule(lengths, prefix):
    docs = [d for d, n in enumerate(lengths) for _ in range(n)]
    T = len(docs)
    m = dense_mask(
        T,
        doc_ids=torch.tensor([docs]),
        prefix_len=None if prefix is None else torch.tensor([prefix]),
    )[0]
    want = [[allowed(i, j, docs, prefix) for j in range(T)] for i in range(T)]
    assert m.tolist() == want


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_doc_ids_and_positions_round_trip(lengths):
    docs = torch.tensor([[d for d, n in enumerate(lengths) for _ in range(n)]])
    pos = torch.tensor([[i for n in lengths for i in range(n)]])
    assert torch.equal(positions_from_doc_ids(docs), pos)
    assert torch.equal(doc_ids_from_positions(pos), docs)


def small_model(**kw) -> Decoder:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)
    return Decoder(ModelConfig(**{**cfg, **kw})).double()


@pytest.mark.parametrize("by", ["doc_ids", "position_ids"])
def test_packed_documents_equal_separate_runs(by):
    model = small_model()
    gen = torch.Generator().manual_seed(2)
    lengths = [5, 1, 9, 7]
    tokens = torch.randint(0, 97, (1, sum(lengths)), generator=gen)
    docs = torch.tensor([[d for d, n in enumerate(lengths) for _ in range(n)]])
    kwargs = (
        {"doc_ids": docs} if by == "doc_ids" else {"position_ids": positions_from_doc_ids(docs)}
    )
    packed = model(tokens, **kwargs)
    start = 0
    for n in lengths:
        alone = model(tokens[:, start : start + n])
        torch.testing.assert_close(packed[:, start : start + n], alone)
        start += n


def test_prefix_lm_sees_the_whole_prefix_and_only_the_past_after_it():
    model = small_model()
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 97, (1, 12), generator=gen)
    changed = tokens.clone()
    changed[0, 4] = (changed[0, 4] + 1) % 97  # inside the prefix of 6
    a, b = model(tokens, prefix_len=6), model(changed, prefix_len=6)
    # Earlier prefix positions see position 4 (bidirectional)...
    assert (a[0, :4] - b[0, :4]).abs().max() > 1e-6
    # ...and a causal model's earlier positions do not.
    torch.testing.assert_close(model(tokens)[0, :4], model(changed)[0, :4])
    # After the prefix, nothing depends on the future.
    later = tokens.clone()
    later[0, 10] = (later[0, 10] + 1) % 97
    torch.testing.assert_close(
        model(tokens, prefix_len=6)[0, :10], model(later, prefix_len=6)[0, :10]
    )
    # A prefix of 0 or 1 is plain causal.
    torch.testing.assert_close(model(tokens, prefix_len=1), model(tokens))


def test_mask_shape_errors():
    with pytest.raises(ValueError, match="doc_ids must have shape"):
        AttentionMask.build(2, 5, "cpu", doc_ids=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix_len must be"):
        AttentionMask.build(2, 5, "cpu", prefix_len=torch.tensor([1, 2, 3]))
