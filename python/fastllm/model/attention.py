"""Multi-head attention with grouped key/value heads (MHA, GQA, MQA)."""

from __future__ import annotations

import torch
from torch import nn

from fastllm.model.cache import CachedMask, KVCache
from fastllm.model.config import ModelConfig
from fastllm.model.masks import AttentionMask
from fastllm.model.rope import apply_rope


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.kv_heads
        self.head_dim = config.head_dim
        kv_dim = self.n_kv_heads * self.head_dim
        self.wq = nn.Linear(config.dim, config.n_heads * self.head_dim, bias=config.qkv_bias)
        self.wk = nn.Linear(config.dim, kv_dim, bias=config.qkv_bias)
        self.wv = nn.Linear(config.dim, kv_dim, bias=config.qkv_bias)
        self.wo = nn.Linear(config.n_heads * self.head_dim, config.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: AttentionMask | CachedMask,
        cache: tuple[KVCache, str] | None = None,
    ) -> torch.Tensor:
        """``cache``: (the cache, this layer's name); the new keys and values are
        written to it and the queries attend over everything it holds."""
        B, T, _ = x.shape
        # -1 rather than n_heads: under tensor parallelism each rank holds a slice of heads.
        q = self.wq(x).view(B, T, -1, self.head_dim)
        k = self.wk(x).view(B, T, -1, self.head_dim)
        v = self.wv(x).view(B, T, -1, self.head_dim)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            kv, layer = cache
            k, v = kv.update(layer, k, v)
        out = mask.attend(q, k, v)
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))

    def init_weights(self, std: float, out_std: float) -> None:
        for w in (self.wq, self.wk, self.wv):
            nn.init.normal_(w.weight, std=std)
            if w.bias is not None:
                nn.init.zeros_(w.bias)
        nn.init.normal_(self.wo.weight, std=out_std)
