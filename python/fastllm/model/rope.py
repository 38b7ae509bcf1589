"""Rotary position embeddings (Su et al. 2021), "rotate half" layout.

The rotate-half layout (pairs (i, i + head_dim/2)) is the one Hugging Face's
Llama uses, so exported q/k weights need no permutation.
"""

from __future__ import annotations

import torch


def rope_tables(
    head_dim: int, max_seq_len: int, theta: float, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each float32 [max_seq_len, head_dim]."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim)
    )
    t = torch.arange(max_seq_len, device=device, dtype=torch.float64)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rope_at(
    cos: torch.Tensor, sin: torch.Tensor, seq_len: int, position_ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tables at the given positions: [1, T, hd] for 0..T-1, else [B, T, hd]."""
    if position_ids is None:
        return cos[:seq_len].unsqueeze(0), sin[:seq_len].unsqueeze(0)
    return cos[position_ids], sin[position_ids]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, T, heads, hd] by the tables [B|1, T, hd] (in float32)."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).type_as(x)
