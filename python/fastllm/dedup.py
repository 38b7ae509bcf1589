"""Duplicate detection (exact hashes now; MinHash/LSH next)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastllm import _core


def content_hashes(texts: Sequence[str], normalize: bool = True) -> np.ndarray:
    """128-bit xxh3 hashes of ``texts`` as an ``(n, 2)`` uint64 array.

    With ``normalize`` (the default) texts that differ only in case,
    punctuation or whitespace hash alike.
    """
    return _core.content_hashes(_as_str_list(texts, "texts"), normalize)


def exact_duplicates(texts: Sequence[str], normalize: bool = True) -> np.ndarray:
    """For each text, the index of the first text with the same content hash
    (its own index when it is the first). ``result != arange(n)`` marks the
    duplicates to drop."""
    hashes = content_hashes(texts, normalize)
    first: dict[tuple[int, int], int] = {}
    out = np.empty(len(hashes), dtype=np.int64)
    for i, (hi, lo) in enumerate(hashes.tolist()):
        out[i] = first.setdefault((hi, lo), i)
    return out


def _as_str_list(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of str, not a single str")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, expected str")
    return texts
