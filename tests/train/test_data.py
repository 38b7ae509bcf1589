"""TokenStream: windows, rank shares, determinism, resumable position, documents."""

from __future__ import annotations

import torch

from fastllm.train import Batches, TokenStream
from fastllm.train.data import DataSpec, stdlib_bytes


def test_windows_are_shifted_pairs_and_ranks_split_the_global_batch():
    tokens = torch.arange(1000)
    whole = TokenStream(tokens, 10, 4, seed=3)
    assert isinstance(whole, Batches)
    parts = [TokenStream(tokens, 10, 2, rank=r, world_size=2, seed=3) for r in range(2)]
    for _ in range(30):  # a few epochs: 99 windows, 24 global batches each
        b = next(whole)
        assert torch.equal(b["labels"][:, :-1], b["input_ids"][:, 1:])
        assert torch.equal(b["input_ids"][:, 0] % 10, torch.zeros(4, dtype=torch.long))
        joined = torch.cat([next(p)["input_ids"] for p in parts])
        assert torch.equal(joined, b["input_ids"])
    assert whole.epoch == 1


def test_state_round_trip_resumes_the_sequence():
    a = TokenStream(torch.arange(5000), 16, 3, seed=1)
    for _ in range(50):
        next(a)
    b = TokenStream(torch.arange(5000), 16, 3, seed=1)
    b.load_state_dict(a.state_dict())
    for _ in range(200):
        assert torch.equal(next(a)["input_ids"], next(b)["input_ids"])


def test_factory_takes_the_spec_and_eos_restarts_positions():
    tokens = torch.tensor([5, 6, 0, 7, 8, 9, 0, 1, 2] * 20)
    make = TokenStream.factory(tokens, shuffle=False, eos_id=0)
    s = make(DataSpec(batch_size=2, seq_len=8, dp_rank=1, dp_size=2))
    assert (s.batch_size, s.rank, s.world_size) == (2, 1, 2)
    first = TokenStream(tokens, 8, 1, shuffle=False, eos_id=0)
    b = next(first)
    assert b["input_ids"][0].tolist() == [5, 6, 0, 7, 8, 9, 0, 1]
    assert b["position_ids"][0].tolist() == [0, 1, 2, 0, 1, 2, 3, 0]


def test_stdlib_bytes_is_deterministic():
    a, b = stdlib_bytes(50_000), stdlib_bytes(50_000)
    assert len(a) == 50_000 and (a == b).all() and a.max() < 256


class _Sequences:
    """A resumable source of single sequences, as the shard reader yields them."""

    def __init__(self, n: int = 100, seq: int = 8) -> None:
        self.n, self.seq, self.pos = n, seq, 0

    def __iter__(self):
        while self.pos < self.n:
            i = self.pos
            self.pos += 1
            x = torch.arange(i, i + self.seq + 1)
            yield {"input_ids": x[:-1], "labels": x[1:], "position_ids": torch.arange(self.seq)}

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, state):
        self.pos = state["pos"]


def test_batched_stacks_sequences_and_resumes_at_the_last_batch():
    from fastllm.train.data import Batched

    a = Batched(_Sequences(), 4)
    assert isinstance(a, Batches)
    first = next(a)
    assert first["input_ids"].shape == (4, 8) and first["position_ids"].shape == (4, 8)
    next(a)
    b = Batched(_Sequences(), 4)
    b.load_state_dict(a.state_dict())
    assert torch.equal(next(a)["input_ids"], next(b)["input_ids"])
    assert next(b)["input_ids"][0, 0] == 12
