"""The shard format: one Megatron-LM indexed dataset (``NAME.bin`` +
``NAME.idx``, one sequence per document, EOS appended) per shard, and the
``manifest.json`` of a shard set.

The layout of ``.idx`` follows megatron-core's
``megatron/core/datasets/indexed_dataset.py`` byte for byte (see
``rust/src/shard/format.rs``); :class:`Shard` is an independent numpy reader
of it that validates everything it reads. :class:`ShardSet` is the shards of
one directory as one token stream; :func:`verify` checks a set against its
manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

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
EOS_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>")


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




def sha256_file(path: Path) -> str:
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
            elif sha256_file(p) != info["sha256"]:
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

