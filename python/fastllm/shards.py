"""Token shards: writing them, checking them, and reading them into torch.

A shard set is a directory of Megatron-LM indexed datasets
(``NAME.bin`` + ``NAME.idx``, one sequence per document, EOS appended) plus a
``manifest.json``. The layout of ``.idx`` follows megatron-core's
``megatron/core/datasets/indexed_dataset.py`` byte for byte (see
``rust/src/shard/format.rs``); ``Shard`` below is an independent numpy reader
of it that validates everything it reads.

``PackedDataset`` turns one or several shard sets into packed fixed-length
training sequences: ``input_ids``, ``labels``, ``position_ids`` (restarting
at each document) and ``doc_ids`` (document index within the row), the
inputs ``fastllm.model.Decoder`` takes for document-masked attention.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from fastllm import _core
from fastllm._io import write_json_atomic

log = logging.getLogger("fastllm.shards")

MANIFEST = "manifest.json"
FORMAT = "megatron-indexed-dataset"
FORMAT_VERSION = 1

_MAGIC = b"MMIDIDX\x00\x00"
_HEADER = 34  # magic 9 + version 8 + dtype 1 + sequences 8 + documents 8
# megatron-core DType codes.
_DTYPES: dict[int, type[np.number]] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}
_EOS_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>")


class ShardError(ValueError):
    """A shard or manifest is missing, truncated or corrupted; the message
    names the file and what is wrong with it."""


def optimal_dtype(vocab_size: int) -> type[np.number]:
    """Megatron's rule (``DType.optimal_dtype``): uint16 below 65500, else int32."""
    return np.uint16 if vocab_size < 65500 else np.int32


# ---------------------------------------------------------------------------
# One shard
# ---------------------------------------------------------------------------


class Shard:
    """One ``.bin`` + ``.idx`` pair, memory-mapped and validated on open."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = str(prefix)
        self.idx_path = Path(self.prefix + ".idx")
        self.bin_path = Path(self.prefix + ".bin")
        self._open()

    def _open(self) -> None:
        idx, bin_ = self.idx_path, self.bin_path
        for p in (idx, bin_):
            if not p.is_file():
                raise ShardError(f"{p}: missing")
        size = idx.stat().st_size
        if size < _HEADER:
            raise ShardError(f"{idx}: truncated: {size} bytes, the header alone is {_HEADER}")
        with open(idx, "rb") as f:
            head = f.read(_HEADER)
        if head[:9] != _MAGIC:
            raise ShardError(f"{idx}: bad magic {head[:9]!r}, expected {_MAGIC!r}")
        (version,) = struct.unpack("<Q", head[9:17])
        if version != 1:
            raise ShardError(f"{idx}: version {version}, expected 1")
        code = head[17]
        if code not in _DTYPES:
            raise ShardError(f"{idx}: unknown dtype code {code}")
        self.dtype = np.dtype(_DTYPES[code])
        n, d = struct.unpack("<QQ", head[18:34])
        want = _HEADER + 12 * n + 8 * d
        if size != want:
            raise ShardError(
                f"{idx}: size {size} bytes does not match its header "
                f"({n} sequences, {d} document indices: {want} bytes)"
            )
        mm = np.memmap(idx, dtype=np.uint8, mode="r")
        self.sizes = np.frombuffer(mm, dtype="<i4", count=n, offset=_HEADER)
        self.pointers = np.frombuffer(mm, dtype="<i8", count=n, offset=_HEADER + 4 * n)
        self.doc_idx = np.frombuffer(mm, dtype="<i8", count=d, offset=_HEADER + 12 * n)
        if n and self.sizes.min() < 0:
            raise ShardError(f"{idx}: negative sequence size")
        ends = np.cumsum(self.sizes, dtype=np.int64) * self.dtype.itemsize
        if n and (self.pointers[0] != 0 or not np.array_equal(self.pointers[1:], ends[:-1])):
            raise ShardError(f"{idx}: sequence pointers do not follow the sizes")
        if d == 0 or self.doc_idx[0] != 0 or self.doc_idx[-1] != n:
            raise ShardError(f"{idx}: document indices must run from 0 to {n}")
        if np.any(np.diff(self.doc_idx) < 0):
            raise ShardError(f"{idx}: document indices decrease")
        self.num_tokens = int(ends[-1] // self.dtype.itemsize) if n else 0
        bin_size = bin_.stat().st_size
        if bin_size != self.num_tokens * self.dtype.itemsize:
            raise ShardError(
                f"{bin_}: size {bin_size} bytes, but {idx.name} says "
                f"{self.num_tokens * self.dtype.itemsize} bytes of tokens"
            )
        # np.memmap cannot map an empty file.
        self.tokens = (
            np.memmap(bin_, dtype=self.dtype.newbyteorder("<"), mode="r")
            if self.num_tokens
            else np.zeros(0, dtype=self.dtype)
        )
        self.starts = ends - self.sizes.astype(np.int64) * self.dtype.itemsize
        self.starts //= self.dtype.itemsize

    def __reduce__(self):
        # Reopen by path: pickling an np.memmap would copy the whole shard.
        return (Shard, (self.prefix,))

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> np.ndarray:
        """Document ``i`` (EOS included), a view into the memory map."""
        s = int(self.starts[i])
        return self.tokens[s : s + int(self.sizes[i])]


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def tokenizer_sha256(tokenizer: Any) -> str:
    """sha256 of the tokenizer's ``tokenizer.json`` text (its canonical
    ``to_json()`` form, so a file and the object loaded from it agree)."""
    from fastllm.tokenizer import Tokenizer

    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = Tokenizer.from_file(tokenizer)
    return hashlib.sha256(tokenizer.to_json().encode("utf-8")).hexdigest()


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
            eos_id = next((specials[n] for n in _EOS_NAMES if n in specials), None)
            if eos_id is None:
                raise ValueError(
                    "eos_id='auto' found no end-of-text special token "
                    f"(looked for {', '.join(_EOS_NAMES)}); pass eos_id=<id> or eos_id=None"
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
                files[p.name] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
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


# ---------------------------------------------------------------------------
# A shard set and its verification
# ---------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{p}: missing (not a finished shard set)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{p}: not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format_version") != FORMAT_VERSION:
        got = m.get("format_version") if isinstance(m, dict) else None
        raise ShardError(f"{p}: format_version {got!r}, expected {FORMAT_VERSION}")
    for key in ("dtype", "shards", "documents", "tokens"):
        if key not in m:
            raise ShardError(f"{p}: missing field {key!r}")
    return m


class ShardSet:
    """The shards of one directory, in manifest order, as one token stream."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)
        self.manifest = read_manifest(self.dir)
        self.shards = [Shard(self.dir / s["name"]) for s in self.manifest["shards"]]
        for s, entry in zip(self.shards, self.manifest["shards"], strict=True):
            if str(s.dtype) != self.manifest["dtype"]:
                raise ShardError(
                    f"{s.idx_path}: dtype {s.dtype}, manifest says {self.manifest['dtype']}"
                )
            if s.num_tokens != entry["tokens"] or len(s) != entry["documents"]:
                raise ShardError(
                    f"{s.idx_path}: {len(s)} documents / {s.num_tokens} tokens, manifest says "
                    f"{entry['documents']} / {entry['tokens']}"
                )
        self.eos_id: int | None = self.manifest.get("eos_id")
        counts = [s.num_tokens for s in self.shards]
        self.shard_starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.num_tokens = int(self.shard_starts[-1])
        self.doc_counts = np.concatenate([[0], np.cumsum([len(s) for s in self.shards])])
        # Where each document starts in the whole stream: one int64 per document.
        self.doc_starts = (
            np.concatenate(
                [s.starts + b for s, b in zip(self.shards, self.shard_starts[:-1], strict=True)]
            )
            if self.shards
            else np.zeros(0, dtype=np.int64)
        )

    @property
    def num_documents(self) -> int:
        return len(self.doc_starts)

    def document(self, i: int) -> np.ndarray:
        """Document ``i`` of the set (EOS included)."""
        k = int(np.searchsorted(self.doc_counts, i, "right")) - 1
        return self.shards[k][i - int(self.doc_counts[k])]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of the stream as int64 (may span shards)."""
        out = np.empty(stop - start, dtype=np.int64)
        k = int(np.searchsorted(self.shard_starts, start, "right")) - 1
        at = start
        while at < stop:
            base = int(self.shard_starts[k])
            end = min(stop, int(self.shard_starts[k + 1]))
            out[at - start : end - start] = self.shards[k].tokens[at - base : end - base]
            at = end
            k += 1
        return out


def verify(path: str | os.PathLike) -> list[str]:
    """Check a shard set: every file's sha256 and size against the manifest,
    each shard's idx/bin structure, the totals, and no stray shard files.
    Returns the problems found, each naming its file (empty: all good)."""
    d = Path(path)
    try:
        m = read_manifest(d)
    except ShardError as e:
        return [str(e)]
    problems: list[str] = []
    listed: set[str] = {MANIFEST}
    docs = tokens = 0
    for entry in m["shards"]:
        for fname, info in entry.get("files", {}).items():
            listed.add(fname)
            p = d / fname
            if not p.is_file():
                problems.append(f"{p}: missing")
            elif p.stat().st_size != info["bytes"]:
                problems.append(
                    f"{p}: size {p.stat().st_size} bytes, manifest says {info['bytes']}"
                )
            elif _sha256(p) != info["sha256"]:
                problems.append(f"{p}: sha256 differs from the manifest (corrupted)")
        try:
            s = Shard(d / entry["name"])
        except ShardError as e:
            problems.append(str(e))
            continue
        if str(s.dtype) != m["dtype"]:
            problems.append(f"{s.idx_path}: dtype {s.dtype}, manifest says {m['dtype']}")
        eos = m.get("eos_id")
        if eos is not None and len(s) and np.any(s.tokens[s.starts + s.sizes - 1] != eos):
            problems.append(f"{s.bin_path}: a document does not end with eos_id {eos}")
        docs += len(s)
        tokens += s.num_tokens
    if not problems and (docs, tokens) != (m["documents"], m["tokens"]):
        problems.append(
            f"{d / MANIFEST}: totals {m['documents']} documents / {m['tokens']} tokens, "
            f"shards hold {docs} / {tokens}"
        )
    for p in sorted(d.iterdir()):
        if p.suffix in (".bin", ".idx") and p.name not in listed:
            problems.append(f"{p}: shard file not in the manifest")
    return problems


# ---------------------------------------------------------------------------
# Packed training sequences
# ---------------------------------------------------------------------------


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of ``total`` proportional to ``weights`` (largest remainder)."""
    raw = weights / weights.sum() * total
    out = np.floor(raw).astype(np.int64)
    rest = total - int(out.sum())
    out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


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
        if weights is None:
            if len(self.names) > 1:
                raise ValueError(f"weights are needed to mix {len(self.names)} sources")
            weights = {self.names[0]: 1.0}
        if set(weights) != set(self.names):
            raise ValueError(f"weights name {sorted(weights)}, sources are {sorted(self.names)}")
        w = np.array([float(weights[n]) for n in self.names])
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"weights must be positive numbers, got {dict(weights)}")
        self.weights = w / w.sum()
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
        # The mixing pattern: block shares, then items ordered by (k + 1/2) / share.
        block = mix_block if len(self.sets) > 1 else 1
        self.block = block
        self.block_counts = _apportion(self.weights, block)
        if np.any(self.block_counts == 0):
            raise ValueError(
                f"mix_block={block} is too small for weights {dict(weights)}: "
                "some source would get no sample per block"
            )
        src = np.repeat(np.arange(len(self.sets)), self.block_counts)
        k = np.concatenate([np.arange(c) for c in self.block_counts])
        order = np.lexsort((src, (2 * k + 1) / (2 * self.block_counts[src])))
        self.pattern_src, self.pattern_k = src[order], k[order]
        self._perms: dict[int, tuple[int, np.ndarray]] = {}
        self._next_batch = 0
        if len(self.sets) > 1:
            log.info("shard mix: %s", self.describe_mix())

    # ---- the global stream -------------------------------------------------
    def locate(self, g: int) -> tuple[int, int]:
        """Global sample ``g`` -> (source, sample index within the source's epoch order)."""
        q, p = divmod(g, self.block)
        s = int(self.pattern_src[p])
        k = q * int(self.block_counts[s]) + int(self.pattern_k[p])
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
        q, r = divmod(num_samples, self.block)
        counts = q * self.block_counts + np.bincount(self.pattern_src[:r], minlength=len(self.sets))
        return {n: int(c) for n, c in zip(self.names, counts, strict=True)}

    def describe_mix(self) -> str:
        share = self.block_counts / self.block
        return ", ".join(
            f"{n} {w:.4f} (realized {s:.6f})"
            for n, w, s in zip(self.names, self.weights, share, strict=True)
        )

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
