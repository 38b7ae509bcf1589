"""Helpers for the shard tests: random documents written with the Rust writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastllm.shards import ShardWriter


def random_docs(seed: int, n: int, vocab: int, max_len: int = 60) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Ids from 1: 0 is kept for EOS so that tests can find document ends.
    return [rng.integers(1, vocab, rng.integers(0, max_len)).astype(np.uint32) for _ in range(n)]


def flat(docs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate(docs) if docs else np.zeros(0, np.uint32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    return ids.astype(np.uint32), offsets


def write(
    out: Path,
    docs: list[np.ndarray],
    *,
    vocab: int = 1000,
    eos_id: int | None = 0,
    max_shard_bytes: int = 1 << 20,
    source: str = "default",
) -> dict:
    with ShardWriter(
        out, vocab_size=vocab, eos_id=eos_id, max_shard_bytes=max_shard_bytes, sync=False
    ) as w:
        w.add(*flat(docs), source=source)
    return w.manifest
