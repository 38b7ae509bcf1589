"""The decoder: embeddings, a stack of pre-norm blocks, a final norm, the head.

The model knows nothing of meshes or parallelism; ``fastllm.parallel`` applies
FSDP, TP and PP to a built model. Blocks live in a ``ModuleDict`` keyed by
layer index so that a pipeline stage can drop layers and keep the others'
names (and so its checkpoint keys); for the same reason ``tok_embeddings``,
``norm`` and ``output`` may be set to None on stages that do not hold them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastllm.config import builder
from fastllm.model.attention import Attention
from fastllm.model.cache import CachedMask, KVCache
from fastllm.model.config import ModelConfig
from fastllm.model.feed_forward import FeedForward
from fastllm.model.masks import AttentionMask
from fastllm.model.norms import RMSNorm
from fastllm.model.rope import rope_at, rope_tables


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = FeedForward(config.dim, config.hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: AttentionMask | CachedMask,
        cache: tuple[KVCache, str] | None = None,
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rope, mask, cache)
        return x + self.feed_forward(self.ffn_norm(x))


class Decoder(nn.Module):
    """A Llama-style decoder. ``forward(tokens) -> logits`` [B, T, vocab]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # A pipeline stage after the first takes hidden states; under sequence
        # parallelism they hold 1/seq_shards of the sequence (set by parallelize).
        self.seq_shards = 1
        self.tok_embeddings: nn.Embedding | None = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleDict({str(i): Block(config) for i in range(config.n_layers)})
        self.norm: RMSNorm | None = RMSNorm(config.dim, config.norm_eps)
        self.output: nn.Linear | None = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        # Not persistent: derived from the config, and left out of checkpoints.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        prefix_len: int | torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits for ``tokens`` [B, T] (long), or the next stage's output when
        this is a pipeline stage without a head.

        - ``doc_ids`` [B, T]: packed documents; attention stays within each.
        - ``position_ids`` [B, T]: RoPE positions; when they restart at document
          boundaries and ``doc_ids`` is not given, they define the documents.
        - ``prefix_len`` (int or [B]): prefix-LM; the first ``prefix_len`` tokens
          attend to each other bidirectionally.
        - ``cache``: incremental decoding (:mod:`fastllm.model.cache`): ``tokens``
          follow what the cache holds (a prefill when it is empty), their keys
          and values are appended, positions come from the cache's rows.
        - ``last_only``: only the last position's output [B, 1, ...] (the head
          runs on one token per row: what sampling needs).
        """
        B, T = tokens.shape[0], tokens.shape[1] * self.seq_shards
        mask: AttentionMask | CachedMask
        if cache is not None:
            if doc_ids is not None or position_ids is not None or prefix_len is not None:
                raise ValueError(
                    "a KV cache takes plain causal rows: no doc_ids, position_ids or prefix_len"
                )
            if cache.batch != B:
                raise ValueError(f"the KV cache holds {cache.batch} rows, tokens have {B}")
            cache.check(T)
            if cache.max_position(T) >= self.config.max_seq_len:
                raise ValueError(
                    f"position {cache.max_position(T)} exceeds "
                    f"model.max_seq_len={self.config.max_seq_len}"
                )
            mask, position_ids = cache.mask(T), cache.positions(T)
        else:
            if T > self.config.max_seq_len:
                raise ValueError(
                    f"sequence length {T} exceeds model.max_seq_len={self.config.max_seq_len}"
                )
            mask = AttentionMask.build(
                B,
                T,
                tokens.device,
                doc_ids=doc_ids,
                position_ids=position_ids,
                prefix_len=prefix_len,
                kernel=self.config.attention,
            )
        rope = rope_at(self.rope_cos, self.rope_sin, T, position_ids)
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        for name, block in self.layers.items():
            h = block(h, rope, mask, None if cache is None else (cache, name))
        if cache is not None:
            cache.advance(T)
        if last_only:
            h = h[:, -1:]
        if self.norm is not None:
            h = self.norm(h)
        if self.output is not None:
            h = self.output(h)
        return h

    @torch.no_grad()
    def init_weights(self, buffer_device: torch.device | str | None = None) -> None:
        """(Re)initialize every parameter and buffer; also the way to materialize a
        model built on the meta device (after ``to_empty``).

        Normal(0, init_std) for embeddings and input projections; the residual
        output projections (attention ``wo``, MLP ``w2``) get init_std/sqrt(2·L)
        so the residual stream's variance does not grow with depth (GPT-2);
        norms start at 1, biases at 0.
        """
        c = self.config
        device = buffer_device if buffer_device is not None else self.rope_cos.device
        cos, sin = rope_tables(c.head_dim, c.max_seq_len, c.rope_theta, device=device)
        self.rope_cos, self.rope_sin = cos, sin
        out_std = c.init_std / math.sqrt(2 * c.n_layers)
        if self.tok_embeddings is not None:
            nn.init.normal_(self.tok_embeddings.weight, std=c.init_std)
        for block in self.layers.values():
            block.attention_norm.reset_parameters()
            block.ffn_norm.reset_parameters()
            block.attention.init_weights(c.init_std, out_std)
            block.feed_forward.init_weights(c.init_std, out_std)
        if self.norm is not None:
            self.norm.reset_parameters()
        if self.output is not None and not c.tie_embeddings:
            nn.init.normal_(self.output.weight, std=c.init_std)
        if self.output is not None and c.tie_embeddings and self.tok_embeddings is not None:
            # `to_empty()` (materializing a meta-device model) gives each
            # module its own new tensor and so unties shared weights: tie again.
            self.output.weight = self.tok_embeddings.weight

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameters, a tied weight counted once; ``exclude_embeddings`` drops the
        token-embedding table (the convention of scaling laws)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings and self.tok_embeddings is not None:
            n -= self.tok_embeddings.weight.numel()
        return n


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean next-token loss in float32 over labels != ignore_index."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index
    )


@builder(ModelConfig)
def build_decoder(config: ModelConfig, device: torch.device | str | None = None) -> Decoder:
    """``ModelConfig.build(device)``: the initialised decoder (on ``device``)."""
    model = Decoder(config)
    return model if device is None else model.to(device)
