"""PackedDataset: packing against a pure-Python reference, coverage across
ranks and workers, seeded shuffle, exact resume, weighted mixing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm.model.masks import AttentionMask, doc_ids_from_positions
from fastllm.shards import PackedDataset, ShardLoader, ShardSet

from .conftest import random_docs, write

# ---- reference ---------------------------------------------------------------


def reference_samples(docs: list[list[int]], L: int, eos: int = 0, pad: int = 0):
    """Packing, spelled out token by token."""
    stream, pos, doc = [], [], []
    for d, tokens in enumerate(docs):
        for p, t in enumerate([*tokens, eos]):
            stream.append(t)
            pos.append(p)
            doc.append(d)
    out = []
    for a in range(0, len(stream), L):
        inp, lab, ps, ds = [], [], [], []
        for t in range(a, a + L):
            if t < len(stream):
                inp.append(stream[t])
                lab.append(stream[t + 1] if t + 1 < len(stream) else -100)
                first = t == a or doc[t] != doc[t - 1]
                ps.append(0 if first else ps[-1] + 1)
                ds.append(0 if t == a else ds[-1] + (doc[t] != doc[t - 1]))
            else:  # padding: its own document
                inp.append(pad)
                lab.append(-100)
                ps.append(0 if t == len(stream) else ps[-1] + 1)
                ds.append(ds[-1] + 1 if t == len(stream) else ds[-1])
        out.append({"input_ids": inp, "labels": lab, "position_ids": ps, "doc_ids": ds})
    return out, stream


def test_packing_matches_reference(tmp_path):
    docs = random_docs(5, 80, 1000, max_len=40)
    write(tmp_path, docs, max_shard_bytes=300)  # many shards: windows span them
    for L in (1, 7, 64):
        ds = PackedDataset(tmp_path, L, shuffle=False)
        ref, _ = reference_samples([d.tolist() for d in docs], L)
        assert ds.samples == [len(ref)]
        for i, r in enumerate(ref):
            got = ds.sample(0, i)
            for k, v in r.items():
                assert got[k].tolist() == v, (L, i, k)


def test_positions_and_doc_ids_agree_with_the_model_masks(tmp_path):
    write(tmp_path, random_docs(6, 50, 1000, max_len=30))
    ds = PackedDataset(tmp_path, 32, batch_size=4, seed=1)
    b = next(iter(ds))
    assert torch.equal(doc_ids_from_positions(b["position_ids"]), b["doc_ids"])
    a = AttentionMask.build(4, 32, "cpu", position_ids=b["position_ids"], kernel="dense")
    c = AttentionMask.build(4, 32, "cpu", doc_ids=b["doc_ids"], kernel="dense")
    assert torch.equal(a.dense, c.dense)
    assert (b["labels"][:, :-1] == b["input_ids"][:, 1:]).all()


# ---- coverage -------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.lists(st.integers(1, 299), max_size=30), min_size=1, max_size=30),
    seq_len=st.integers(1, 16),
    world_size=st.integers(1, 4),
    workers=st.integers(1, 3),
    batch_size=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_token_once_per_epoch_across_ranks_and_workers(
    docs, seq_len, world_size, workers, batch_size, seed
):
    with tempfile.TemporaryDirectory() as d:
        write(Path(d), [np.array(x, np.uint32) for x in docs], vocab=300)
        ref, stream = reference_samples(docs, seq_len)
        seen = []
        for rank in range(world_size):
            ds = PackedDataset(
                d, seq_len, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size
            )
            for w in range(workers):
                for b in ds.batch_indices(w, workers):
                    batch = ds.batch(b)
                    for row, i in enumerate(batch["index"].tolist()):
                        seen.append(i)
                        assert batch["input_ids"][row].tolist() == ref[i]["input_ids"]
                        assert batch["position_ids"][row].tolist() == ref[i]["position_ids"]
                        assert batch["doc_ids"][row].tolist() == ref[i]["doc_ids"]
        assert sorted(seen) == list(range(len(ref)))
        covered = [t for i in sorted(seen) for t in ref[i]["input_ids"]][: len(stream)]
        assert covered == stream


def test_dataloader_workers_deliver_the_same_stream(tmp_path):
    write(tmp_path, random_docs(7, 200, 1000))
    ds = PackedDataset(tmp_path, 16, batch_size=3, seed=3, rank=1, world_size=2)
    plain = [b["index"].tolist() for b in ds]
    for workers in (1, 2):
        ds2 = PackedDataset(tmp_path, 16, batch_size=3, seed=3, rank=1, world_size=2)
        got = [b["index"].tolist() for b in ShardLoader(ds2, num_workers=workers)]
        assert got == plain
    other = PackedDataset(tmp_path, 16, batch_size=3, seed=3, rank=0, world_size=2)
    mine = {i for b in plain for i in b}
    theirs = {i for b in other for i in b["index"].tolist()}
    assert not mine & theirs and len(mine | theirs) == ds.samples[0]


def test_drop_last_gives_every_rank_the_same_count(tmp_path):
    write(tmp_path, random_docs(8, 37, 1000))
    counts = [
        PackedDataset(tmp_path, 8, rank=r, world_size=3, drop_last=True).rank_samples
        for r in range(3)
    ]
    assert len(set(counts)) == 1
    n = PackedDataset(tmp_path, 8).samples[0]
    assert sum(counts) == n - n % 3


def test_shuffle_is_seeded_and_changes_per_epoch(tmp_path):
    write(tmp_path, random_docs(9, 300, 1000))
    n = PackedDataset(tmp_path, 8).samples[0]

    def order(seed):
        ds = PackedDataset(tmp_path, 8, seed=seed, batch_size=n, num_samples=2 * n)
        return [b["index"].tolist() for b in ds]

    e0, e1 = order(0)
    assert sorted(e0) == sorted(e1) == list(range(n))
    assert e0 != e1 and e0 != list(range(n))
    assert order(0) == [e0, e1]
    assert order(1)[0] != e0


# ---- resume ----------------------------------------------------------------------


def _batches(it, n):
    out = []
    for b in it:
        out.append(b)
        if len(out) == n:
            break
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    for k, name in enumerate(("web", "code", "books")):
        write(root / name, random_docs(10 + k, 150 * (k + 1), 1000), source=name)
    return {n: root / n for n in ("web", "code", "books")}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("mixed", [False, True])
def test_resume_mid_epoch_is_exact(three_sources, workers, mixed):
    if mixed:
        src, kw = three_sources, {"weights": {"web": 0.7, "code": 0.2, "books": 0.1}}
        kw["num_samples"] = 400
    else:
        src, kw = three_sources["code"], {}
    make = lambda: PackedDataset(src, 24, batch_size=4, seed=5, rank=1, world_size=2, **kw)  # noqa: E731
    N = 12
    straight = _batches(ShardLoader(make(), num_workers=workers), N)
    first = ShardLoader(make(), num_workers=workers)
    half = _batches(first, N // 2)
    state = first.state_dict()
    assert state["next_batch"] == N // 2
    resumed = ShardLoader(make(), num_workers=workers)
    resumed.load_state_dict(state)
    _same(straight, half + _batches(resumed, N - N // 2))


def test_in_process_state_dict_without_loader(tmp_path):
    write(tmp_path, random_docs(12, 100, 1000))
    ds = PackedDataset(tmp_path, 8, batch_size=2, seed=2)
    it = iter(ds)
    first = [next(it) for _ in range(3)]
    state = ds.state_dict()
    ds2 = PackedDataset(tmp_path, 8, batch_size=2, seed=2)
    ds2.load_state_dict(state)
    _same(first + _batches(ds2, 3), _batches(PackedDataset(tmp_path, 8, batch_size=2, seed=2), 6))


def test_resume_refuses_a_different_configuration(tmp_path):
    write(tmp_path, random_docs(13, 50, 1000))
    state = PackedDataset(tmp_path, 8, seed=2).state_dict()
    with pytest.raises(ValueError, match="seq_len"):
        PackedDataset(tmp_path, 16, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        PackedDataset(tmp_path, 8, seed=3).load_state_dict(state)


# ---- mixing -----------------------------------------------------------------------


def test_mix_weights_are_realized(three_sources):
    weights = {"web": 0.7, "code": 0.2, "books": 0.1}
    ds = PackedDataset(three_sources, 16, weights=weights, batch_size=8, num_samples=4000)
    for n in (1, 10, 999, 4000, 100_003):
        got = ds.realized_mix(n)
        assert sum(got.values()) == n
        for name, w in weights.items():
            assert abs(got[name] - w * n) <= 1.0, (n, name, got)
    loader = ShardLoader(ds)
    for _ in loader:
        pass
    assert int(loader.delivered.sum()) == 4000
    assert dict(zip(ds.names, loader.delivered.tolist(), strict=True)) == ds.realized_mix(4000)
    for name, share in loader.realized_mix().items():
        assert abs(share - weights[name]) < 1e-3
    assert "web 0.7000" in ds.describe_mix()


def test_small_sources_cycle_through_epochs_in_a_mix(three_sources):
    ds = PackedDataset(
        three_sources, 64, weights={"web": 1, "code": 1, "books": 1}, batch_size=50, seed=4
    )
    n_web = ds.samples[ds.names.index("web")]
    seen = []
    for b in _batches(ds, 30):
        seen += [
            i for s, i in zip(b["source"].tolist(), b["index"].tolist(), strict=True) if s == 0
        ]
    # Every full epoch of "web" is a permutation of its samples.
    for e in range(len(seen) // n_web):
        assert sorted(seen[e * n_web : (e + 1) * n_web]) == list(range(n_web))


def test_mixing_errors_name_the_problem(three_sources):
    with pytest.raises(ValueError, match="weights are needed"):
        PackedDataset(three_sources, 8)
    with pytest.raises(ValueError, match="weights name"):
        PackedDataset(three_sources, 8, weights={"web": 1.0})
    with pytest.raises(ValueError, match="positive"):
        PackedDataset(three_sources, 8, weights={"web": 1.0, "code": 0.0, "books": 1.0})
    with pytest.raises(ValueError, match="rank"):
        PackedDataset(three_sources["web"], 8, rank=2, world_size=2)


def test_pickled_dataset_does_not_copy_the_shards(three_sources):
    import pickle

    ds = PackedDataset(three_sources["books"], 8)
    blob = pickle.dumps(ds)
    tokens = ShardSet(three_sources["books"]).num_tokens
    assert len(blob) < tokens  # the memory maps travel by path
    _same(_batches(pickle.loads(blob), 2), _batches(ds, 2))


def test_a_batch_trains_the_decoder_with_documents_kept_apart(tmp_path):
    from fastllm.model import Decoder, ModelConfig, cross_entropy

    write(tmp_path, random_docs(14, 40, 64, max_len=12), vocab=64)
    b = next(iter(PackedDataset(tmp_path, 32, batch_size=2, seed=0)))
    torch.manual_seed(0)
    model = Decoder(ModelConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=32))
    model = model.double().eval()
    logits = model(b["input_ids"], position_ids=b["position_ids"], doc_ids=b["doc_ids"])
    assert torch.isfinite(cross_entropy(logits, b["labels"]))
    # Each document's logits are those of the document run alone.
    row, doc = b["doc_ids"][0], 1
    seg = (row == doc).nonzero().flatten()
    alone = model(b["input_ids"][:1, seg])
    torch.testing.assert_close(logits[0, seg], alone[0])
