"""Which keys each query may attend to: causal, prefix-LM, and documents.

One rule covers all three. Query ``q`` may see key ``k`` in row ``b`` when

    same_doc(b, q, k)  and  (k <= q  or  (q < prefix[b] and k < prefix[b]))

- causal: no documents, no prefix;
- prefix-LM (GLM, T5-style PrefixLM): the first ``prefix[b]`` tokens see each
  other in both directions, later tokens are causal;
- documents: packed sequences given per-token document ids, or position ids
  that restart at 0 (or jump) at each document boundary.

Two kernels compute it: a dense boolean mask passed to
``F.scaled_dot_product_attention`` (exact, any device, O(T²) memory), and
flex attention with a block mask (skips fully masked blocks; used on CUDA).
Plain causal attention takes SDPA's ``is_causal`` fast path in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def doc_ids_from_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """Document index per token [B, T]: a new document starts wherever the position
    does not continue the previous one (a restart at 0, or any jump)."""
    starts = torch.ones_like(position_ids, dtype=torch.long)
    starts[:, 1:] = (position_ids[:, 1:] != position_ids[:, :-1] + 1).long()
    return starts.cumsum(dim=1) - 1


def positions_from_doc_ids(doc_ids: torch.Tensor) -> torch.Tensor:
    """Position within its document for each token [B, T]."""
    T = doc_ids.shape[1]
    idx = torch.arange(T, device=doc_ids.device).expand_as(doc_ids)
    new = torch.ones_like(doc_ids, dtype=torch.bool)
    new[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    start = torch.where(new, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start


@dataclass
class AttentionMask:
    """The mask of one batch, built once per forward and shared by every layer."""

    seq_len: int
    doc_ids: torch.Tensor | None = None  # [B, T] long
    prefix_len: torch.Tensor | None = None  # [B] long
    kernel: str = "dense"  # "dense" | "flex"
    dense: torch.Tensor | None = None  # [B, 1, T, T] bool, True = attend
    block_mask: Any = None

    @classmethod
    def build(
        cls,
        batch: int,
        seq_len: int,
        device: torch.device | str,
        *,
        doc_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        prefix_len: int | torch.Tensor | None = None,
        kernel: str = "auto",
    ) -> AttentionMask:
        """The mask for a [batch, seq_len] batch. ``position_ids`` imply documents
        (a new one wherever positions do not continue) unless ``doc_ids`` is given."""
        B, T, device = batch, seq_len, torch.device(device)
        if doc_ids is None and position_ids is not None:
            doc_ids = doc_ids_from_positions(position_ids)
        if doc_ids is not None and doc_ids.shape != (B, T):
            raise ValueError(f"doc_ids must have shape {(B, T)}, got {tuple(doc_ids.shape)}")
        if prefix_len is not None:
            prefix_len = torch.as_tensor(prefix_len, device=device, dtype=torch.long)
            if prefix_len.ndim == 0:
                prefix_len = prefix_len.expand(B)
            if prefix_len.shape != (B,):
                raise ValueError(
                    f"prefix_len must be an int or shape {(B,)}, got {tuple(prefix_len.shape)}"
                )
        if kernel == "auto":
            kernel = "flex" if device.type == "cuda" else "dense"
        mask = cls(seq_len=T, doc_ids=doc_ids, prefix_len=prefix_len, kernel=kernel)
        if mask.is_causal:
            return mask
        if kernel == "flex":
            mask.block_mask = _block_mask(mask, B, T, device)
        elif kernel == "dense":
            mask.dense = dense_mask(
                T, doc_ids=doc_ids, prefix_len=prefix_len, device=device
            ).unsqueeze(1)
        else:
            raise ValueError(f"attention kernel must be auto, flex or dense, got {kernel!r}")
        return mask

    @property
    def is_causal(self) -> bool:
        """Plain causal: no documents, no prefix."""
        return self.doc_ids is None and self.prefix_len is None

    def mask_mod(self):
        """The rule as a flex-attention ``mask_mod(b, h, q, k)``."""
        doc, prefix = self.doc_ids, self.prefix_len

        def mod(b, h, q, k):
            ok = k <= q
            if prefix is not None:
                p = prefix[b]
                ok = ok | ((q < p) & (k < p))
            if doc is not None:
                ok = ok & (doc[b, q] == doc[b, k])
            return ok

        return mod

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of q [B, H, T, hd] over k, v [B, KV, T, hd] (GQA when KV < H)."""
        gqa = k.shape[1] != q.shape[1]
        if self.is_causal:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        if self.kernel == "flex":
            return _flex(q.device.type)(q, k, v, block_mask=self.block_mask, enable_gqa=gqa)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.dense, enable_gqa=gqa)


def dense_mask(
    T: int,
    *,
    doc_ids: torch.Tensor | None = None,
    prefix_len: torch.Tensor | None = None,
    batch: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The rule as a boolean [B, T, T] tensor (True = attend)."""
    idx = torch.arange(T, device=device)
    q, k = idx[:, None], idx[None, :]
    ok = (k <= q).unsqueeze(0)
    if prefix_len is not None:
        p = prefix_len.view(-1, 1, 1)
        ok = ok | ((q < p) & (k < p))
    if doc_ids is not None:
        ok = ok & (doc_ids[:, :, None] == doc_ids[:, None, :])
    B = max(batch, ok.shape[0])
    return ok.expand(B, T, T)


def _block_mask(mask: AttentionMask, B: int, T: int, device: torch.device):
    from torch.nn.attention.flex_attention import create_block_mask

    # Compiled on CUDA: the eager version evaluates mask_mod for every (q, k) pair.
    return create_block_mask(
        mask.mask_mod(), B, None, T, T, device=device, _compile=device.type == "cuda"
    )


_FLEX: dict[str, Any] = {}


def _flex(device_type: str):
    """flex_attention, compiled on CUDA; eager elsewhere (it then materializes the
    scores, which is fine for the tiny CPU checks it serves)."""
    if device_type not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        fn = (
            torch.compile(flex_attention, dynamic=False)
            if device_type == "cuda"
            else flex_attention
        )
        _FLEX[device_type] = fn
    return _FLEX[device_type]
