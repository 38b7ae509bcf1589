"""A key/value cache for incremental decoding, batched over rows of different lengths.

Layout: every layer has one preallocated ``k`` and ``v`` [B, KV, capacity, hd].
Rows are **left-padded**: row ``b`` holds ``start[b]`` pad slots, then its
tokens, so every row writes its next token to the same slot (``length``, the
slots filled so far) and a step is one slice assignment, not a scatter; the
last column of a prefill is every row's last prompt token. Slots are not
positions: the RoPE position of slot ``s`` in row ``b`` is ``s - start[b]``
(the token's true position in its own sequence), so a row computes what it
would alone, and stays within ``max_seq_len`` exactly when it would alone.

Which keys a query at slot ``q`` of row ``b`` sees: ``start[b] <= k <= q``
(its own tokens, causally), and ``k == q`` so that a pad query attends to
itself; without it a pad row would be fully masked, SDPA would return NaN,
and a NaN value times a zero weight is still NaN in the rows that mask it.

    cache = KVCache.for_model(model, batch=2, capacity=16, start=[0, 3])
    logits = model(tokens, cache=cache, last_only=True)   # prefill [2, T]
    logits = model(next_ids[:, None], cache=cache, last_only=True)  # one step
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CachedMask:
    """The mask of one cached forward: queries at slots ``length..length+T-1``
    over keys at slots ``0..length+T-1``. Same ``attend`` as :class:`AttentionMask`."""

    dense: torch.Tensor | None  # [B, 1, T, S] bool, True = attend; None = see every key
    causal: bool  # no padding and an empty cache: SDPA's is_causal fast path

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        gqa = k.shape[1] != q.shape[1]
        if self.causal:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.dense, enable_gqa=gqa)


class KVCache:
    """Keys and values of every layer for ``batch`` left-padded rows."""

    def __init__(
        self,
        layers: Sequence[str],
        batch: int,
        capacity: int,
        kv_heads: int,
        head_dim: int,
        *,
        start: Sequence[int] | torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        """``layers``: the names of the blocks (a pipeline stage holds some);
        ``start[b]``: pad slots at the front of row ``b`` (default none)."""
        self.slot = {name: i for i, name in enumerate(layers)}
        shape = (len(self.slot), batch, kv_heads, capacity, head_dim)
        # One allocation for all layers: decoding never reallocates or copies.
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        start = torch.zeros(batch, dtype=torch.long) if start is None else torch.as_tensor(start)
        if start.shape != (batch,):
            raise ValueError(f"start must have shape {(batch,)}, got {tuple(start.shape)}")
        if start.numel() and (int(start.min()) < 0 or int(start.max()) >= capacity):
            raise ValueError(f"start must be in [0, {capacity}), got {start.tolist()}")
        self.start = start.to(device=device, dtype=torch.long)
        self.padded = bool(start.any())
        self._min_start = int(start.min()) if batch else 0  # a Python int: no device sync per step
        self.batch, self.capacity = batch, capacity
        self.length = 0  # slots filled, the same for every row

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        batch: int,
        capacity: int | None = None,
        *,
        start: Sequence[int] | torch.Tensor | None = None,
    ) -> KVCache:
        """A cache shaped for ``model`` (a :class:`~fastllm.model.Decoder`), on its
        device and in its dtype; ``capacity`` defaults to ``model.config.max_seq_len``."""
        c = model.config
        w = next(model.parameters())
        return cls(
            list(model.layers.keys()),
            batch,
            c.max_seq_len if capacity is None else capacity,
            c.kv_heads,
            c.head_dim,
            start=start,
            dtype=w.dtype,
            device=w.device,
        )

    def positions(self, T: int) -> torch.Tensor:
        """RoPE positions [B, T] of the next ``T`` tokens (pad slots get 0);
        [1, T] when no row is padded (every row has the same positions)."""
        slots = torch.arange(self.length, self.length + T, device=self.start.device)[None, :]
        if not self.padded:
            return slots
        return (slots - self.start[:, None]).clamp_(min=0)

    def max_position(self, T: int) -> int:
        """The largest true position among the next ``T`` tokens (row with the least padding)."""
        return self.length + T - 1 - self._min_start

    def mask(self, T: int) -> CachedMask:
        """Which cached keys the next ``T`` queries see (built once per forward)."""
        S = self.length + T
        if not self.padded:
            # One query over every key so far, or a prefill of an empty cache: no mask.
            if T == 1 or self.length == 0:
                return CachedMask(None, causal=T > 1)
        q = torch.arange(self.length, S, device=self.start.device)[:, None]
        k = torch.arange(S, device=self.start.device)[None, :]
        ok = (k <= q) & ((k >= self.start[:, None, None]) | (k == q))
        return CachedMask(ok.unsqueeze(1), causal=False)

    def update(
        self, layer: str, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new ``k``, ``v`` [B, KV, T, hd] of ``layer`` at slots
        ``length..length+T-1``; the layer's keys and values so far [B, KV, length+T, hd]."""
        i, T = self.slot[layer], k.shape[2]
        end = self.length + T
        self.k[i, :, :, self.length : end] = k
        self.v[i, :, :, self.length : end] = v
        return self.k[i, :, :, :end], self.v[i, :, :, :end]

    def check(self, T: int) -> None:
        """Raise unless ``T`` more slots fit."""
        if self.length + T > self.capacity:
            raise ValueError(
                f"KV cache full: {self.length} + {T} tokens exceed its capacity {self.capacity}"
            )

    def advance(self, T: int) -> None:
        """Count ``T`` more slots as filled (after every layer wrote them)."""
        self.length += T
