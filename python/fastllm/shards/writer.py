"""Writing a shard set: documents in, size-capped Megatron shards and a
manifest out (the shard bytes come from the Rust writer)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from fastllm import _core
from fastllm.io.atomic import write_json_atomic
from fastllm.shards.format import (
    EOS_NAMES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    sha256_file,
    tokenizer_sha256,
)

log = logging.getLogger("fastllm.shards")


class ShardWriter:
    """Write documents into a directory of size-capped Megatron shards.

    >>> with ShardWriter("out/web", tokenizer=tok) as w:   # doctest: +SKIP
    ...     w.add_texts(texts, source="web")

    ``eos_id="auto"`` takes the tokenizer's end-of-text special token;
    ``None`` writes no EOS. Shards are published by rename as they fill; the
    manifest (sha256 of every file) is written atomically by ``close()``,
    and is what makes the directory a finished shard set. Leaving the
    ``with`` block by an exception abandons the open shard.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        tokenizer: Any = None,
        vocab_size: int | None = None,
        eos_id: int | None | str = "auto",
        max_shard_bytes: int = 1 << 30,
        prefix: str = "shard",
        sync: bool = True,
    ):
        self.dir = Path(out_dir)
        if tokenizer is not None and not hasattr(tokenizer, "encode_to_numpy"):
            from fastllm.tokenizer import Tokenizer

            tokenizer = Tokenizer.from_file(tokenizer)
        self.tokenizer = tokenizer
        if vocab_size is None:
            if tokenizer is None:
                raise ValueError("ShardWriter needs a tokenizer or vocab_size")
            vocab_size = tokenizer.vocab_size
        if eos_id == "auto":
            specials = tokenizer.special_tokens if tokenizer is not None else {}
            eos_id = next((specials[n] for n in EOS_NAMES if n in specials), None)
            if eos_id is None:
                raise ValueError(
                    "eos_id='auto' found no end-of-text special token "
                    f"(looked for {', '.join(EOS_NAMES)}); pass eos_id=<id> or eos_id=None"
                )
        if (self.dir / MANIFEST).exists():
            raise FileExistsError(f"{self.dir / MANIFEST}: this shard set is already finished")
        self.vocab_size, self.eos_id, self.max_shard_bytes = vocab_size, eos_id, max_shard_bytes
        self._core = _core.ShardWriter(
            str(self.dir), vocab_size, prefix, eos_id, max_shard_bytes, sync
        )
        self.dtype: str = self._core.dtype
        self.manifest: dict[str, Any] | None = None

    def add(self, ids: np.ndarray, offsets: np.ndarray, source: str = "default") -> None:
        """Add documents: document ``i`` is ``ids[offsets[i]:offsets[i+1]]``
        (the output of ``Tokenizer.encode_to_numpy``)."""
        ids = np.asarray(ids)
        if ids.dtype != np.uint32:
            if ids.size and (ids.min() < 0 or ids.max() >= 2**32):
                raise ValueError("ids must be non-negative token ids")
            ids = ids.astype(np.uint32)
        self._core.add(
            np.ascontiguousarray(ids), np.ascontiguousarray(offsets, dtype=np.int64), source
        )

    def add_texts(self, texts: list[str], source: str = "default") -> None:
        """Tokenize ``texts`` (special-token text encoded as ordinary text) and add them."""
        if self.tokenizer is None:
            raise ValueError("add_texts needs the writer to have a tokenizer")
        ids, offsets = self.tokenizer.encode_to_numpy(texts, disallowed_special=())
        self.add(ids, offsets, source)

    def close(self) -> dict[str, Any]:
        """Publish the last shard and write ``manifest.json``; returns the manifest."""
        sources = {s: {"documents": d, "tokens": t} for s, d, t in self._core.sources}
        shards = []
        for name, docs, tokens, _bytes, oversized in self._core.finish():
            if oversized:
                log.warning("%s: one document of %d tokens exceeds max_shard_bytes", name, tokens)
            files = {}
            for ext in (".bin", ".idx"):
                p = self.dir / (name + ext)
                files[p.name] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            shards.append(
                {
                    "name": name,
                    "documents": docs,
                    "tokens": tokens,
                    "oversized": oversized,
                    "files": files,
                }
            )
        tok_hash = tokenizer_sha256(self.tokenizer) if self.tokenizer is not None else None
        self.manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tokenizer": {"sha256": tok_hash, "vocab_size": self.vocab_size},
            "dtype": self.dtype,
            "eos_id": self.eos_id,
            "max_shard_bytes": self.max_shard_bytes,
            "documents": sum(s["documents"] for s in shards),
            "tokens": sum(s["tokens"] for s in shards),
            "oversized_documents": sum(s["oversized"] for s in shards),
            "sources": sources,
            "shards": shards,
        }
        write_json_atomic(self.dir / MANIFEST, self.manifest)
        return self.manifest

    def abort(self) -> None:
        """Abandon the open shard (its temporary files are removed)."""
        self._core.abort()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
