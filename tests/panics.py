"""Real panics in the batch kernels, for the tests of the one panic policy
(``rust/src/guard.rs``, ``fastllm/_failures.py``).

Each stand-in below calls the real kernel of ``fastllm._core``, then runs
the same texts through ``_core._panic_for_test``: the kernels' own guard
with a kernel that panics on every text containing a marker. A marked text
comes back as a real kernel's failed row does (its result blank, ``(row,
panic message)`` among the failures), so the Python wrappers and the
pipeline see exactly what a kernel that panics on it gives them. Nothing in
the package calls these: tests put them in place with monkeypatch
(:func:`patch`), and Ray workers with :func:`install`.
"""

from __future__ import annotations

import numpy as np

from fastllm import _core

# One marker per kernel; each survives extraction and the filters.
HASH = "qqhashqq"  # content_hashes
SIG = "qqsigqq"  # minhash
JAC = "qqjacqq"  # shingle_jaccard, shingle_sets (exact verification)
TOK = "qqtokqq"  # Bpe.encode_to_numpy, Bpe.encode_batch


def _panics(texts, marker: str) -> list[tuple[int, str]]:
    _, failed = _core._panic_for_test(texts, marker)
    return failed


def content_hashes(real):
    def fn(texts, normalize=True):
        hashes, failed = real(texts, normalize)
        extra = _panics(texts, HASH)
        hashes[[k for k, _ in extra]] = 0
        return hashes, sorted(failed + extra)

    return fn


def minhash(real):
    def fn(texts, num_perm, ngram, seed):
        sigs, failed = real(texts, num_perm, ngram, seed)
        extra = _panics(texts, SIG)
        sigs[[k for k, _ in extra]] = 0
        return sigs, sorted(failed + extra)

    return fn


def shingle_jaccard(real):
    def fn(texts, u, v, ngram):
        sims, failed = real(texts, u, v, ngram)
        paired = set(u.tolist()) | set(v.tolist())  # only those are shingled
        extra = [(k, m) for k, m in _panics(texts, JAC) if k in paired]
        bad = np.isin(u, [k for k, _ in extra]) | np.isin(v, [k for k, _ in extra])
        sims[bad] = np.nan
        return sims, sorted(failed + extra)

    return fn


def _without(ids: np.ndarray, offsets: np.ndarray, bad: np.ndarray):
    """Flat rows ``ids[offsets[i]:offsets[i + 1]]`` with the rows ``bad`` emptied."""
    lengths = np.diff(offsets).astype(np.int64)
    ids = ids[~np.repeat(bad, lengths)]
    lengths[bad] = 0
    return ids, np.concatenate([[0], np.cumsum(lengths)]).astype(offsets.dtype)


def shingle_sets(real):
    def fn(texts, ngram, which=None):
        offsets, hashes, failed = real(texts, ngram, which)
        rows = np.arange(len(texts)) if which is None else np.asarray(which)
        msg = dict(_panics(texts, JAC))
        bad = np.isin(rows, list(msg))
        hashes, offsets = _without(hashes, offsets, bad)
        extra = [(int(r), msg[int(r)]) for r in rows[bad]]
        return offsets, hashes, sorted(failed + extra)

    return fn


class Bpe:
    """A ``_core.Bpe`` whose batch encoders also panic on texts with ``TOK``."""

    def __init__(self, core):
        self._real = core

    def __getattr__(self, name):
        return getattr(self._real, name)

    def encode_to_numpy(self, texts, mode, allowed):
        ids, offsets, failed = self._real.encode_to_numpy(texts, mode, allowed)
        extra = _panics(texts, TOK)
        bad = np.zeros(len(offsets) - 1, dtype=bool)
        bad[[k for k, _ in extra]] = True
        ids, offsets = _without(ids, offsets, bad)
        return ids, offsets, sorted(failed + extra)

    def encode_batch(self, texts, mode, allowed):
        ids, failed = self._real.encode_batch(texts, mode, allowed)
        extra = _panics(texts, TOK)
        for k, _ in extra:
            ids[k] = []
        return ids, sorted(failed + extra)


def panicking_tokenizer(tok):
    """``tok`` (a :class:`fastllm.Tokenizer`) with :class:`Bpe` inside."""
    tok._core = Bpe(tok._core)
    return tok


KERNELS = {
    "content_hashes": content_hashes,
    "minhash": minhash,
    "shingle_jaccard": shingle_jaccard,
    "shingle_sets": shingle_sets,
}


def patch(setattr, *kernels: str, tokenizer: bool = False) -> None:
    """Put the stand-ins of ``kernels`` in place with ``setattr`` (pytest's
    ``monkeypatch.setattr``, or plain ``setattr``); with ``tokenizer``,
    every ``Tokenizer.from_file`` gets a :class:`Bpe`."""
    for name in kernels:
        setattr(_core, name, KERNELS[name](getattr(_core, name)))
    if tokenizer:
        from fastllm.tokenizer import Tokenizer

        real = Tokenizer.from_file.__func__
        setattr(
            Tokenizer, "from_file", classmethod(lambda cls, p: panicking_tokenizer(real(cls, p)))
        )


def install() -> None:
    """Ray's ``worker_process_setup_hook``: the stand-ins of the kernels the
    Ray engine runs on its workers (content hashes, MinHash, the tokenizer)."""
    patch(setattr, "content_hashes", "minhash", tokenizer=True)
