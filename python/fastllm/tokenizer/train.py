"""Training a byte-level BPE (``Tokenizer.train``): stream the corpus into
the Rust trainer in chunks, then build the tokenizer from its merges."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from fastllm import _core

# Texts are handed to Rust in chunks of about this many bytes, so that
# Python holds one chunk at a time while Rust keeps only the counts.
_CHUNK_BYTES = 8 << 20
_CHUNK_DOCS = 8192


def _documents(texts: Iterable[str | os.PathLike], text_field: str) -> Iterator[str]:
    from fastllm.io.readers import iter_texts

    if isinstance(texts, str | bytes):
        raise TypeError("texts must be an iterable of str or paths, not a single str")
    for i, item in enumerate(texts):
        if isinstance(item, str):
            yield item
        elif isinstance(item, os.PathLike):
            yield from iter_texts(item, field=text_field)
        else:
            raise TypeError(
                f"texts[{i}] is {type(item).__name__}; expected str (a document) "
                "or pathlib.Path (a file to read)"
            )


def _check(vocab_size: int, special_tokens: Sequence[str], min_frequency: int) -> list[str]:
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens must be a sequence of str, not a single str")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special_tokens: {s!r} is not a non-empty str")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens has duplicates: {specials}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    smallest = 256 + len(specials)
    if vocab_size < smallest:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the 256 byte tokens and "
            f"{len(specials)} special tokens need at least {smallest}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 0:
        raise ValueError(f"min_frequency must be an int >= 0, got {min_frequency!r}")
    return specials


def train(
    cls,
    texts: Iterable[str | os.PathLike],
    vocab_size: int,
    *,
    pattern: str,
    special_tokens: Sequence[str],
    min_frequency: int,
    show_progress: bool,
    text_field: str,
):
    specials = _check(vocab_size, special_tokens, min_frequency)
    trainer = _core.BpeTrainer(pattern, vocab_size, min_frequency, specials)

    from tqdm.auto import tqdm

    fed = tqdm(
        desc="counting pre-tokens", unit="B", unit_scale=True, disable=not show_progress
    )
    chunk: list[str] = []
    size = 0
    for doc in _documents(texts, text_field):
        chunk.append(doc)
        size += len(doc)
        if size >= _CHUNK_BYTES or len(chunk) >= _CHUNK_DOCS:
            trainer.feed(chunk)
            fed.update(size)
            chunk, size = [], 0
    if chunk:
        trainer.feed(chunk)
        fed.update(size)
    fed.close()

    bar = tqdm(desc="merging", unit="tok", disable=not show_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    merges, vocab = trainer.finish(progress if show_progress else None)
    bar.close()

    n_special = len(specials)
    for i, s in enumerate(specials):
        if vocab[i] != s.encode():
            raise RuntimeError(f"trainer placed {vocab[i]!r} at id {i}, expected special {s!r}")
    ordinary = [(tok, i) for i, tok in enumerate(vocab) if i >= n_special]
    core = _core.Bpe.from_merges(
        ordinary, merges, [(s, i) for i, s in enumerate(specials)], pattern
    )
    return cls(core)
