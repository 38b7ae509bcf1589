"""Token shards: the format and its verification, the writer, packed
training sequences and mixing.

A shard set is a directory of Megatron-LM indexed datasets (``NAME.bin`` +
``NAME.idx``) plus a ``manifest.json`` (:mod:`fastllm.shards.format`),
written by :class:`ShardWriter` (:mod:`~fastllm.shards.writer`) and read for
training by :class:`PackedDataset` (:mod:`~fastllm.shards.dataset`), which
interleaves several sets by weight (:mod:`~fastllm.shards.mix`).
"""

from fastllm.shards.dataset import PackedDataset, ShardLoader
from fastllm.shards.format import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    Shard,
    ShardError,
    ShardSet,
    optimal_dtype,
    read_manifest,
    tokenizer_sha256,
    verify,
)
from fastllm.shards.mix import Mixture
from fastllm.shards.writer import ShardWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "Mixture",
    "PackedDataset",
    "Shard",
    "ShardError",
    "ShardLoader",
    "ShardSet",
    "ShardWriter",
    "optimal_dtype",
    "read_manifest",
    "tokenizer_sha256",
    "verify",
]
