"""The Llama-style decoder: config, layers, masks.

>>> from fastllm.model import Decoder, ModelConfig
>>> model = Decoder(ModelConfig.named("tiny"))
"""

from fastllm.model.config import SIZES, ModelConfig
from fastllm.model.decoder import Block, Decoder, cross_entropy
from fastllm.model.masks import AttentionMask, dense_mask, doc_ids_from_positions

__all__ = [
    "SIZES",
    "AttentionMask",
    "Block",
    "Decoder",
    "ModelConfig",
    "cross_entropy",
    "dense_mask",
    "doc_ids_from_positions",
]
