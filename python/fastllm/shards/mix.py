"""Mixing several token sources by weight.

A mixture deals the global sample stream to its sources in a fixed pattern
of ``block`` samples: each source gets its share of the block (largest
remainder), and within the block the samples of all sources are ordered by
``(k + 1/2) / share`` (a low-discrepancy order, so any prefix of the stream
is within one sample per source of its share).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of ``total`` proportional to ``weights`` (largest remainder)."""
    raw = weights / weights.sum() * total
    out = np.floor(raw).astype(np.int64)
    rest = total - int(out.sum())
    out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


class Mixture:
    """Weights over named sources, dealt as a fixed pattern of ``block`` samples.

    ``weights`` (positive, normalized here) name every source; None means
    one source. Global sample ``g`` is source ``s``'s ``k``-th sample with
    ``(s, k) = locate(g)``, the same on every rank and after every resume.
    """

    def __init__(self, names: Sequence[str], weights: Mapping[str, float] | None, block: int):
        self.names = list(names)
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
        self.block = block
        self.block_counts = _apportion(self.weights, block)
        if np.any(self.block_counts == 0):
            raise ValueError(
                f"mix_block={block} is too small for weights {dict(weights)}: "
                "some source would get no sample per block"
            )
        # The pattern: block shares, then items ordered by (k + 1/2) / share.
        src = np.repeat(np.arange(len(self.names)), self.block_counts)
        k = np.concatenate([np.arange(c) for c in self.block_counts])
        order = np.lexsort((src, (2 * k + 1) / (2 * self.block_counts[src])))
        self.pattern_src, self.pattern_k = src[order], k[order]

    def locate(self, g: int) -> tuple[int, int]:
        """Global sample ``g`` -> (source, how many of that source's samples came before)."""
        q, p = divmod(g, self.block)
        s = int(self.pattern_src[p])
        return s, q * int(self.block_counts[s]) + int(self.pattern_k[p])

    def realized(self, num_samples: int) -> dict[str, int]:
        """Samples per source among the first ``num_samples`` of the global stream."""
        q, r = divmod(num_samples, self.block)
        counts = q * self.block_counts + np.bincount(self.pattern_src[:r], minlength=len(self.names))
        return {n: int(c) for n, c in zip(self.names, counts, strict=True)}

    def describe(self) -> str:
        share = self.block_counts / self.block
        return ", ".join(
            f"{n} {w:.4f} (realized {s:.6f})"
            for n, w, s in zip(self.names, self.weights, share, strict=True)
        )
