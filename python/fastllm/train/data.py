"""The data protocol of the loop, and ``TokenStream``, an in-memory implementation.

The loop asks one thing of its data: an iterator of micro-batches, each a dict
with ``input_ids`` and ``labels`` (long [B, T]; label -100 is ignored) and
optionally ``position_ids`` (positions that restart at document boundaries,
which turns on document masking), plus ``state_dict()`` / ``load_state_dict()``
so the position is part of a checkpoint. The loop hands a data factory a
:class:`DataSpec` (micro-batch size, sequence length, rank, world size, seed);
each rank must read its own share of every global batch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from fastllm.config import ConfigError, builder
from fastllm.model.config import ModelConfig
from fastllm.train.config import DataConfig


@runtime_checkable
class Batches(Protocol):
    """What the loop reads: an iterator of batch dicts with a resumable position."""

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DataSpec:
    """What the loop needs from a data source on one rank."""

    batch_size: int  # sequences per micro-batch on this rank
    seq_len: int
    dp_rank: int = 0  # this rank's index among the data-parallel replicas (from the mesh)
    dp_size: int = 1  # data-parallel degree: the replicas reading different batches
    seed: int = 0


DataSource = Batches | Callable[[DataSpec], Batches]


def resolve(source: DataSource, spec: DataSpec) -> Batches:
    """A ready ``Batches`` (used as is) or a factory called with ``spec``."""
    if isinstance(source, Batches):
        return source
    if callable(source):
        data = source(spec)
        if not isinstance(data, Batches):
            raise TypeError(f"data factory returned {type(data).__name__}, not a Batches")
        return data
    raise TypeError(f"data must be a Batches or a factory of one, got {type(source).__name__}")


class TokenStream:
    """Fixed-length windows of a 1-D token tensor, batched, deterministic, resumable.

    Window ``i`` is ``tokens[i·T : i·T + T + 1]``: inputs are its first T
    tokens, labels its last T. Each epoch visits every window once, in an
    order shuffled by ``seed + epoch`` (or in order); a global batch is the
    next ``batch_size × world_size`` windows of that order and rank ``r`` takes
    the ``r``-th slice, so any world size sees the same global batches. The
    tail that does not fill a global batch is dropped each epoch. The position
    is the same on every rank (``epoch``, ``index``).

    With ``eos_id``, ``position_ids`` restart after each separator token, so
    attention stays inside documents.
    """

    def __init__(
        self,
        tokens: torch.Tensor | np.ndarray,
        seq_len: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        eos_id: int | None = None,
    ) -> None:
        tokens = as_long(tokens)
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.tokens = tokens
        self.seq_len, self.batch_size = seq_len, batch_size
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.eos_id = shuffle, seed, eos_id
        self.n_windows = (len(tokens) - 1) // seq_len
        if self.n_windows < batch_size * world_size:
            raise ValueError(
                f"{len(tokens)} tokens make {self.n_windows} windows of {seq_len + 1}, fewer than "
                f"one global batch of {batch_size} × {world_size}"
            )
        self.epoch, self.index = 0, 0
        self._order_epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    @classmethod
    def factory(
        cls, tokens: torch.Tensor | np.ndarray, **kwargs: Any
    ) -> Callable[[DataSpec], TokenStream]:
        """A data factory for the loop: ``Trainer(cfg, TokenStream.factory(tokens))``."""
        tokens = as_long(tokens)

        def make(spec: DataSpec) -> TokenStream:
            opts = {"seed": spec.seed, **kwargs}
            return cls(
                tokens,
                spec.seq_len,
                spec.batch_size,
                rank=spec.dp_rank,
                world_size=spec.dp_size,
                **opts,
            )

        return make

    def _order_of(self, epoch: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed + epoch)
                self._order = torch.randperm(self.n_windows, generator=g)
            else:
                self._order = torch.arange(self.n_windows)
            self._order_epoch = epoch
        return self._order

    def __iter__(self) -> TokenStream:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        per_step = self.batch_size * self.world_size
        if self.index + per_step > self.n_windows:
            self.epoch, self.index = self.epoch + 1, 0
        order = self._order_of(self.epoch)
        start = self.index + self.rank * self.batch_size
        idx = order[start : start + self.batch_size]
        self.index += per_step
        offsets = idx[:, None] * self.seq_len + torch.arange(self.seq_len + 1)
        windows = self.tokens[offsets]
        batch = {"input_ids": windows[:, :-1].contiguous(), "labels": windows[:, 1:].contiguous()}
        if self.eos_id is not None:
            batch["position_ids"] = _positions_after(batch["input_ids"], self.eos_id)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "index": self.index,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "global_batch": self.batch_size * self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (
            ("seq_len", self.seq_len),
            ("global_batch", self.batch_size * self.world_size),
        ):
            if state.get(key, mine) != mine:
                raise ValueError(f"data state has {key}={state[key]}, this stream has {mine}")
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.seed = int(state.get("seed", self.seed))


class Batched:
    """Batches from a resumable source of single sequences (a dataset that yields
    ``{"input_ids": [T], "labels": [T], "position_ids": [T]}`` dicts and has
    ``state_dict()``, as the shard reader does): stacks ``batch_size`` of them
    and forwards the position. Reads in the calling process, without workers
    or prefetch, so the source's position is exactly that of the last batch."""

    def __init__(self, source: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source, self.batch_size = source, batch_size
        self._it: Iterator[dict[str, Any]] | None = None

    def __iter__(self) -> Batched:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._it is None:
            self._it = iter(self.source)
        rows = [next(self._it) for _ in range(self.batch_size)]
        return {key: torch.stack([torch.as_tensor(r[key]) for r in rows]).long() for key in rows[0]}

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state)
        self._it = None


def as_long(tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A flat int64 tensor (a copy of a read-only or memory-mapped array)."""
    if isinstance(tokens, torch.Tensor):
        return tokens.long().flatten()
    return torch.from_numpy(np.array(tokens, dtype=np.int64)).flatten()


def _positions_after(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Position within the document, a document starting after each ``eos_id``."""
    T = input_ids.shape[1]
    idx = torch.arange(T).expand_as(input_ids)
    starts = torch.zeros_like(input_ids, dtype=torch.bool)
    starts[:, 1:] = input_ids[:, :-1] == eos_id
    start = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start


def stdlib_bytes(limit: int) -> np.ndarray:
    """UTF-8 bytes of the Python standard library's own ``.py`` sources (sorted
    paths, the test suite left out), up to ``limit`` bytes: a corpus present
    wherever Python is installed. Files are joined with a NUL byte."""
    root = Path(os.__file__).parent
    skip = {"test", "tests", "site-packages", "idlelib", "__pycache__"}
    out = bytearray()
    # A sorted walk that stops at the limit: deterministic, and quick for small limits.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                out += (Path(dirpath) / name).read_bytes() + b"\0"
            except OSError:
                continue
            if len(out) >= limit:
                return np.frombuffer(bytes(out[:limit]), dtype=np.uint8)
    if not out:
        raise RuntimeError(f"no Python sources found under {root} ({sys.version})")
    return np.frombuffer(bytes(out[:limit]), dtype=np.uint8)


def load_tokens(path: str | Path, dtype: str = "uint16") -> np.ndarray:
    """Token ids from a ``.npy`` file, or a raw binary file of ``dtype``, memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data.tokens: {str(path)!r} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
    else:
        arr = np.memmap(path, dtype=np.dtype(dtype), mode="r")
    if arr.ndim != 1:
        raise ValueError(f"data.tokens: {path} must hold a 1-D array, got shape {arr.shape}")
    return arr


def split(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train head and validation tail."""
    n_val = max(1, int(len(tokens) * val_fraction))
    return tokens[:-n_val], tokens[-n_val:]


def shard_data(path: str, shuffle: bool) -> Callable[[DataSpec], Batches]:
    """A factory of resumable batches over a shard set, endless (epoch after
    epoch, reshuffled each), each data-parallel rank reading its share."""
    from fastllm.shards import PackedDataset, ShardLoader, ShardSet

    shard_set = ShardSet(path)  # opened (and validated) once, at start

    def make(spec: DataSpec) -> Batches:
        ds = PackedDataset(
            shard_set,
            spec.seq_len,
            batch_size=spec.batch_size,
            seed=spec.seed,
            shuffle=shuffle,
            rank=spec.dp_rank,
            world_size=spec.dp_size,
            num_samples=1 << 62,
        )
        return ShardLoader(ds)

    return make


@builder(DataConfig)
def build_data(
    d: DataConfig, model: ModelConfig
) -> tuple[Callable[[DataSpec], Batches], Callable[[DataSpec], Batches] | None]:
    """``DataConfig.build(model_config)``: (train factory, validation factory or None)."""
    if d.shards:
        return shard_data(d.shards, d.shuffle), (
            shard_data(d.val_shards, False) if d.val_shards else None
        )
    if d.tokens:
        try:
            tokens = load_tokens(d.tokens, d.token_dtype)
        except ValueError as e:
            raise ConfigError("data.tokens", str(e).removeprefix("data.tokens: ")) from None
    else:
        tokens = stdlib_bytes(d.embedded_bytes)
    top = int(tokens.max()) if len(tokens) else 0
    if top >= model.vocab_size:
        raise ConfigError(
            "data.tokens", f"holds id {top}, outside model.vocab_size={model.vocab_size}"
        )
    train, val = split(tokens, d.val_fraction)
    return (
        TokenStream.factory(train, shuffle=d.shuffle, eos_id=d.eos_id),
        TokenStream.factory(val, shuffle=False, eos_id=d.eos_id),
    )
