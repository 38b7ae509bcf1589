"""A small pure-Python model of Hugging Face ``BpeTrainer`` with byte-level
pre-tokenization, for tests (STYLE.md: keep a readable reference beside a
subtle kernel). It follows tokenizers/src/models/bpe/trainer.rs step by step:

- ids: special tokens first (in order, duplicates skipped), then the 256
  byte-level characters sorted by code point, then new tokens in merge order;
  a merge whose string already exists reuses that id and adds no vocab entry;
- the queue orders by (count desc, (left id, right id) asc); entries are
  checked lazily: a popped entry whose count is stale is pushed back with the
  current count;
- each queue entry carries the set of words it was pushed for, and a merge
  only touches those words. A pair can hold several entries (when a merge
  re-creates an existing token), so it can be merged twice; the serialized
  merges keep the last rank of such a pair.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character table (ByteLevel's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def to_bytes(token: str) -> bytes:
    """A byte-level vocabulary string back to its bytes."""
    return bytes(CHAR_TO_BYTE[c] for c in token)


def special_key(token: str) -> bytes | str:
    """What a special token collides with: the bytes its characters spell in
    the byte-level alphabet, or itself when it is not spelled in it."""
    if all(c in CHAR_TO_BYTE for c in token):
        return to_bytes(token)
    return token


def train(
    word_counts: dict[bytes, int],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: tuple[str, ...] = (),
) -> tuple[list[tuple[bytes, bytes]], list[bytes | str]]:
    """(merges in serialized order, vocabulary in id order). Vocabulary
    entries are bytes, or the special token's str when it spells no bytes."""
    vocab: list[bytes | str] = []
    ids: dict[bytes | str, int] = {}
    for t in special_tokens:
        k = special_key(t)
        if k not in ids:
            ids[k] = len(vocab)
            vocab.append(k)
    for ch in sorted(CHAR_TO_BYTE):
        k = bytes([CHAR_TO_BYTE[ch]])
        if k not in ids:
            ids[k] = len(vocab)
            vocab.append(k)

    words = [[ids[bytes([b])] for b in w] for w in word_counts]
    counts = list(word_counts.values())
    pair_counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:], strict=False):
            pair_counts[p] += counts[i]
            where[p].add(i)

    seq = itertools.count()  # stable order for equal entries
    queue: list = []

    def push(pair, count, pos):
        heapq.heappush(queue, (-count, pair, next(seq), pos))

    for p, pos in where.items():
        if pair_counts[p] > 0:
            push(p, pair_counts[p], pos)

    merges: list[tuple[tuple[int, int], int]] = []
    while len(ids) < vocab_size and queue:
        neg, pair, _, pos = heapq.heappop(queue)
        if -neg != pair_counts[pair]:
            push(pair, pair_counts[pair], pos)
            continue
        if -neg < 1 or min_frequency > -neg:
            break
        new = vocab[pair[0]] + vocab[pair[1]]
        if new not in ids:
            ids[new] = len(vocab)
            vocab.append(new)
        new_id = ids[new]
        merges.append((pair, new_id))
        where = defaultdict(set)
        for i in pos:
            w, j, out = words[i], 0, []
            while j < len(w):
                if j + 1 < len(w) and w[j] == pair[0] and w[j + 1] == pair[1]:
                    if out:
                        pair_counts[(out[-1], pair[0])] -= counts[i]
                        pair_counts[(out[-1], new_id)] += counts[i]
                        where[(out[-1], new_id)].add(i)
                    if j + 2 < len(w):
                        pair_counts[(pair[1], w[j + 2])] -= counts[i]
                        pair_counts[(new_id, w[j + 2])] += counts[i]
                        where[(new_id, w[j + 2])].add(i)
                    out.append(new_id)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
        for p in sorted(where):
            if pair_counts[p] > 0:
                push(p, pair_counts[p], where[p])

    # HF keeps merges in a map pair -> rank: a pair merged twice keeps its last rank.
    last = {pair: r for r, (pair, _) in enumerate(merges)}
    ordered = sorted(last, key=last.__getitem__)
    return [(vocab[a], vocab[b]) for a, b in ordered], vocab
