"""A tiny pure-Python reference for the near-duplicate kernels.

Readable, slow, and written from the rules in rust/src/dedup/*.rs: the
kernels are property-tested against it.
"""

from __future__ import annotations

import unicodedata

import xxhash

EMPTY = 2**64 - 1
MASK64 = 2**64 - 1

UNSPACED = [
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
    (0x20000, 0x3FFFF),
]


def is_unspaced(c: str) -> bool:
    return any(lo <= ord(c) <= hi for lo, hi in UNSPACED)


def is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LMN"


def words(text: str) -> list[str]:
    out: list[str] = []
    open_word = False
    for c in text:
        if not is_word_char(c):
            open_word = False
        elif is_unspaced(c):
            out.append(c.lower())
            open_word = False
        elif open_word:
            out[-1] += c.lower()
        else:
            out.append(c.lower())
            open_word = True
    return out


def shingles(text: str, ngram: int) -> list[str]:
    w = words(text)
    if not w:
        return []
    if len(w) <= ngram:
        return [" ".join(w)]
    return [" ".join(w[i : i + ngram]) for i in range(len(w) - ngram + 1)]


def shingle_hashes(text: str, ngram: int) -> list[int]:
    return [xxhash.xxh3_64_intdigest(s.encode("utf-8")) for s in shingles(text, ngram)]


def splitmix64(seed: int):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def params(num_perm: int, seed: int) -> list[tuple[int, int]]:
    rng = splitmix64(seed)
    out = []
    for _ in range(num_perm):
        a = next(rng) | 1
        b = next(rng)
        out.append((a, b))
    return out


def signature(text: str, num_perm: int, ngram: int, seed: int) -> list[int]:
    hs = shingle_hashes(text, ngram)
    if not hs:
        return [EMPTY] * num_perm
    # Multiply-shift: the top 32 bits of a*h + b mod 2**64.
    return [min(((a * h + b) & MASK64) >> 32 for h in hs) for a, b in params(num_perm, seed)]


def band_key(sig: list[int], band: int, rows: int) -> int:
    vals = sig[band * rows : (band + 1) * rows]
    data = b"".join(v.to_bytes(8, "little") for v in vals)
    return xxhash.xxh3_64_intdigest(data, seed=band)


def clusters(sigs: list[list[int]], threshold: float, bands: int, rows: int, verify: bool):
    n = len(sigs)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for band in range(bands):
        buckets: dict[int, list[int]] = {}
        for i, s in enumerate(sigs):
            buckets.setdefault(band_key(s, band, rows), []).append(i)
        for members in buckets.values():
            first = min(members)
            for m in members:
                if m == first:
                    continue
                same = sum(x == y for x, y in zip(sigs[first], sigs[m], strict=True))
                if not verify or same / len(sigs[first]) >= threshold:
                    ra, rb = find(first), find(m)
                    parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def jaccard(a: str, b: str, ngram: int) -> float:
    x, y = set(shingles(a, ngram)), set(shingles(b, ngram))
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def bucket_pairs(sigs, threshold, bands, rows, verify):
    """Every pair sharing a bucket in some band (verified), sorted, once."""
    out = set()
    for band in range(bands):
        buckets: dict[int, list[int]] = {}
        for i, s in enumerate(sigs):
            buckets.setdefault(band_key(s, band, rows), []).append(i)
        for members in buckets.values():
            for k, a in enumerate(members):
                for b in members[k + 1 :]:
                    same = sum(x == y for x, y in zip(sigs[a], sigs[b], strict=True))
                    if not verify or same / len(sigs[a]) >= threshold:
                        out.add((a, b))
    return sorted(out)


def exact_clusters(texts, sigs, threshold, bands, rows, ngram):
    """Star edges of every bucket, kept when the exact Jaccard >= threshold."""
    n = len(texts)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for band in range(bands):
        buckets: dict[int, list[int]] = {}
        for i, s in enumerate(sigs):
            buckets.setdefault(band_key(s, band, rows), []).append(i)
        for members in buckets.values():
            first = min(members)
            for m in members:
                if m != first and jaccard(texts[first], texts[m], ngram) >= threshold:
                    ra, rb = find(first), find(m)
                    parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def exact_fold(text: str) -> str:
    """exact.rs's folding, for ASCII text: lowercase letters and digits, one
    space for each whitespace run between kept characters, the rest dropped."""
    out: list[str] = []
    pending = started = False
    for c in text:
        if c in " \t\n\x0b\x0c\r":
            pending = started
        elif c.isascii() and c.isalnum():
            if pending:
                out.append(" ")
                pending = False
            started = True
            out.append(c.lower())
    return "".join(out)
