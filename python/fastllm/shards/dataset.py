"""Packed training sequences from shard sets, as resumable torch batches.

:class:`PackedDataset` turns one or several shard sets into packed
fixed-length training sequences: ``input_ids``, ``labels``, ``position_ids``
(restarting at each document) and ``doc_ids`` (document index within the
row), the inputs ``fastllm.model.Decoder`` takes for document-masked
attention. :class:`ShardLoader` is a DataLoader over it that knows its position.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from fastllm.shards.format import ShardError, ShardSet
from fastllm.shards.mix import Mixture

log = logging.getLogger("fastllm.shards")


class PackedDataset(IterableDataset):
    """Packed fixed-length sequences from one or several shard sets, as batches.

    Each batch is a dict of int64 tensors: ``input_ids``, ``labels``,
    ``position_ids`` and ``doc_ids`` of shape [batch, seq_len] (pass
    ``position_ids``/``doc_ids`` to ``Decoder.forward`` for document
    masking), and ``source``/``index`` of shape [batch]: which source and
    which of its packed sequences each row is.

    Each source's token stream is cut into windows of ``seq_len`` input
    tokens (each label is the next token; the stream's last token gets
    -100; the last window is padded with ``pad_id`` and label -100). The
    sample order is a permutation per source and epoch drawn from ``seed``.
    Several sources are interleaved by ``weights`` in a fixed pattern of
    ``mix_block`` samples (a low-discrepancy order, so any prefix of the
    stream is within one sample per source of its share).

    The global sample stream is dealt round-robin to ``world_size`` ranks;
    a rank's samples are grouped into batches of ``batch_size``, and
    DataLoader worker ``w`` of ``W`` builds the batches ``w, w+W, ...``, so
    that the loader delivers them in order. Iterate it through
    ``ShardLoader`` to get ``state_dict()`` with workers.

    ``num_samples``: length of the global stream; default one epoch for a
    single source, endless for a mixture. ``drop_last`` trims the stream to
    a multiple of ``world_size`` so every rank gets as many samples.
    """

    def __init__(
        self,
        sources: str | os.PathLike | ShardSet | Mapping[str, str | os.PathLike | ShardSet],
        seq_len: int,
        *,
        batch_size: int = 1,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        num_samples: int | None = None,
        drop_last: bool = False,
        pad_id: int | None = None,
        mix_block: int = 1 << 16,
    ):
        super().__init__()
        if not isinstance(sources, Mapping):
            sources = {"default": sources}
        if not sources:
            raise ValueError("sources is empty")
        for name, val in (("seq_len", seq_len), ("batch_size", batch_size), ("mix_block", mix_block),
                          ("world_size", world_size)):  # fmt: skip
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.names = list(sources)
        self.sets = [s if isinstance(s, ShardSet) else ShardSet(s) for s in sources.values()]
        for name, s in zip(self.names, self.sets, strict=True):
            if s.num_tokens == 0:
                raise ShardError(f"{s.dir}: source {name!r} has no tokens")
        self.mixture = Mixture(self.names, weights, mix_block if len(self.sets) > 1 else 1)
        self.weights, self.block = self.mixture.weights, self.mixture.block
        self.block_counts = self.mixture.block_counts
        self.seq_len, self.batch_size, self.seed, self.shuffle = seq_len, batch_size, seed, shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        eos = self.sets[0].eos_id
        self.pad_id = pad_id if pad_id is not None else (eos if eos is not None else 0)
        # Samples per source epoch: every token is an input exactly once.
        self.samples = [-(-s.num_tokens // seq_len) for s in self.sets]
        if num_samples is None and len(self.sets) == 1:
            num_samples = self.samples[0]
        if num_samples is not None and drop_last:
            num_samples -= num_samples % world_size
        self.num_samples = num_samples
        self._perms: dict[int, tuple[int, np.ndarray]] = {}
        self._next_batch = 0
        if len(self.sets) > 1:
            log.info("shard mix: %s", self.describe_mix())

    # ---- the global stream -------------------------------------------------
    def locate(self, g: int) -> tuple[int, int]:
        """Global sample ``g`` -> (source, sample index within the source's epoch order)."""
        s, k = self.mixture.locate(g)
        epoch, i = divmod(k, self.samples[s])
        return s, int(self._perm(s, epoch)[i]) if self.shuffle else i

    def _perm(self, s: int, epoch: int) -> np.ndarray:
        cached = self._perms.get(s)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, s, epoch])
            cached = (epoch, rng.permutation(self.samples[s]))
            self._perms[s] = cached
        return cached[1]

    def realized_mix(self, num_samples: int) -> dict[str, int]:
        """Samples per source among the first ``num_samples`` of the global stream."""
        return self.mixture.realized(num_samples)

    def describe_mix(self) -> str:
        return self.mixture.describe()

    def sample(self, s: int, i: int) -> dict[str, np.ndarray]:
        """Packed sequence ``i`` of source ``s``."""
        data, L = self.sets[s], self.seq_len
        a = i * L
        b = min(a + L, data.num_tokens)
        toks = data.read(a, min(b + 1, data.num_tokens))
        n = b - a
        inp = np.full(L, self.pad_id, dtype=np.int64)
        lab = np.full(L, -100, dtype=np.int64)
        inp[:n] = toks[:n]
        lab[: len(toks) - 1] = toks[1:]
        t = np.arange(a, b)
        doc = np.searchsorted(data.doc_starts, t, "right") - 1
        pos = np.arange(L, dtype=np.int64)
        pos[:n] = t - np.maximum(data.doc_starts[doc], a)
        doc_ids = np.empty(L, dtype=np.int64)
        doc_ids[:n] = doc - doc[0]
        if n < L:  # padding: its own document, positions from 0
            doc_ids[n:] = doc_ids[n - 1] + 1
            pos[n:] = np.arange(L - n)
        return {"input_ids": inp, "labels": lab, "position_ids": pos, "doc_ids": doc_ids}

    # ---- this rank's batches -------------------------------------------------
    @property
    def rank_samples(self) -> int | None:
        """Samples this rank gets from the stream (None: endless)."""
        if self.num_samples is None:
            return None
        return max(0, -(-(self.num_samples - self.rank) // self.world_size))

    @property
    def num_batches(self) -> int | None:
        n = self.rank_samples
        return None if n is None else -(-n // self.batch_size)

    def batch(self, b: int) -> dict[str, torch.Tensor]:
        """This rank's batch ``b``."""
        lo = b * self.batch_size
        hi = lo + self.batch_size
        if self.rank_samples is not None:
            hi = min(hi, self.rank_samples)
        rows, where = [], []
        for j in range(lo, hi):
            s, i = self.locate(j * self.world_size + self.rank)
            rows.append(self.sample(s, i))
            where.append((s, i))
        out = {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}
        # Which source and which of its packed sequences each row is.
        out["source"], out["index"] = torch.tensor(where, dtype=torch.long).T.contiguous()
        return out

    def batch_indices(self, worker: int = 0, num_workers: int = 1) -> Iterator[int]:
        """The batches worker ``worker`` of ``num_workers`` builds, from the
        current position: every ``num_workers``-th, so that the DataLoader's
        round-robin over workers delivers them in order."""
        b, total = self._next_batch + worker, self.num_batches
        while total is None or b < total:
            yield b
            b += num_workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for b in self.batch_indices(wid, nw):
            out = self.batch(b)
            if info is None:
                self._next_batch = b + 1
            yield out

    # ---- resumable position --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "next_batch": self._next_batch,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "sources": {n: s.num_tokens for n, s in zip(self.names, self.sets, strict=True)},
            "block_counts": [int(c) for c in self.block_counts],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = self.state_dict()
        for key in mine:
            if key != "next_batch" and state.get(key) != mine[key]:
                raise ValueError(
                    f"cannot resume: state {key}={state.get(key)!r}, this dataset has {mine[key]!r}"
                )
        nb = state["next_batch"]
        if isinstance(nb, bool) or not isinstance(nb, int) or nb < 0:
            raise ValueError(f"cannot resume: next_batch must be an int >= 0, got {nb!r}")
        self._next_batch = nb


class ShardLoader:
    """A DataLoader over a ``PackedDataset`` that knows its position.

    Counts the batches it has delivered, so ``state_dict()`` is exact with any
    number of workers (prefetched batches are not counted). Workers are
    started per iteration (no ``persistent_workers``): each iteration starts
    from the current position.
    """

    def __init__(self, dataset: PackedDataset, **loader_kwargs: Any):
        for k in ("batch_size", "shuffle", "sampler", "persistent_workers"):
            if loader_kwargs.get(k):
                raise ValueError(f"ShardLoader: {k} is set by the dataset, not the loader")
        self.dataset = dataset
        self.loader = DataLoader(dataset, batch_size=None, **loader_kwargs)
        self._position = dataset._next_batch
        self.delivered = np.zeros(len(dataset.sets), dtype=np.int64)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.dataset._next_batch = self._position
        for batch in self.loader:
            self._position += 1
            self.delivered += np.bincount(batch["source"].numpy(), minlength=len(self.delivered))
            yield batch

    def realized_mix(self) -> dict[str, float]:
        """Share of delivered sequences per source."""
        total = max(int(self.delivered.sum()), 1)
        return {n: int(c) / total for n, c in zip(self.dataset.names, self.delivered, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        state = self.dataset.state_dict()
        state["next_batch"] = self._position
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dataset.load_state_dict(state)
        self._position = self.dataset._next_batch
