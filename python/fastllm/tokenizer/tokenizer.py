"""Byte-level BPE: the Python face of the Rust tokenizer (``fastllm._core.Bpe``).

Compatible with Hugging Face ``tokenizer.json`` files (GPT-2 style, and
Llama-3 / Qwen style Split + ByteLevel) and tiktoken ``.tiktoken`` files:
the same text gives the same ids. Python owns argument checks and
special-token policy; Rust does the work with the GIL released.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from typing import Literal

import numpy as np

from fastllm import _core
from fastllm._failures import hand_over
from fastllm.io.arrow import is_arrow, text_column
from fastllm.io.atomic import write_text_atomic

#: GPT-2's split pattern (tiktoken's equivalent form).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
#: GPT-4's split pattern (cl100k_base).
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
#: GPT-4o's split pattern (o200k_base).
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

Specials = Literal["all"] | Collection[str]

# GPT-2's byte <-> printable-character table (HF token spelling).
_PRINTABLE = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
_BYTE_TO_CHAR: dict[int, str] = {b: chr(b) for b in _PRINTABLE}
_BYTE_TO_CHAR.update(
    {b: chr(256 + i) for i, b in enumerate(b for b in range(256) if b not in _BYTE_TO_CHAR)}
)
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


class Tokenizer:
    """A byte-level BPE tokenizer.

    Build one with :meth:`train`, :meth:`from_file` (HF ``tokenizer.json``)
    or :meth:`from_tiktoken`; save it with :meth:`save`.
    """

    def __init__(self, core: _core.Bpe):
        if not isinstance(core, _core.Bpe):
            raise TypeError(
                "Tokenizer() takes a fastllm._core.Bpe; use Tokenizer.train, "
                "Tokenizer.from_file or Tokenizer.from_tiktoken"
            )
        self._core = core
        self._specials: dict[str, int] = dict(core.specials)
        self._special_index = {s: i for i, (s, _) in enumerate(core.specials)}

    # ---- construction -------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a Hugging Face ``tokenizer.json`` with a byte-level BPE model.

        Raises ``ValueError`` naming what is unsupported or malformed, and
        ``OSError`` when the file cannot be read.
        """
        return cls(_core.Bpe.from_hf_file(os.fspath(path)))

    @classmethod
    def from_tiktoken(
        cls,
        path: str | os.PathLike,
        pattern: str,
        special_tokens: dict[str, int] | None = None,
    ) -> Tokenizer:
        """Load a tiktoken ``.tiktoken`` ranks file with its split ``pattern``
        (e.g. :data:`GPT4_PATTERN` for cl100k_base) and special tokens."""
        specials = dict(special_tokens or {})
        for name, id_ in specials.items():
            if not isinstance(name, str) or not isinstance(id_, int) or id_ < 0:
                raise ValueError(f"special_tokens[{name!r}] must map a str to an id >= 0")
        return cls(_core.Bpe.from_tiktoken_file(os.fspath(path), pattern, list(specials.items())))

    @classmethod
    def train(
        cls,
        texts: Iterable[str | os.PathLike],
        vocab_size: int,
        *,
        pattern: str = GPT4_PATTERN,
        special_tokens: Sequence[str] = ("<|endoftext|>",),
        min_frequency: int = 2,
        show_progress: bool = True,
        text_field: str = "text",
    ) -> Tokenizer:
        """Train a byte-level BPE on ``texts``.

        ``texts`` is any iterable of ``str`` documents; an item that is a
        ``pathlib.Path`` (or other ``os.PathLike``) is read as a file (txt,
        jsonl[.gz|.zst] with a ``text_field``, parquet column). Input is
        streamed in chunks: memory holds pre-token counts, not the corpus.
        Merges equal those of HF ``tokenizers``' ``BpeTrainer`` with the same
        pre-tokenization.
        """
        from fastllm.tokenizer.train import train as _train

        return _train(
            cls,
            texts,
            vocab_size,
            pattern=pattern,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            show_progress=show_progress,
            text_field=text_field,
        )

    # ---- saving ---------------------------------------------------------
    def to_json(self) -> str:
        """This tokenizer as a Hugging Face ``tokenizer.json`` document."""
        return self._core.to_hf_json()

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file``
        and ``transformers.PreTrainedTokenizerFast(tokenizer_file=...)`` load
        and that encodes identically there. The write is atomic."""
        write_text_atomic(path, self.to_json())

    # ---- encoding -----------------------------------------------------
    def _special_args(self, allowed_special: Specials, disallowed_special: Specials):
        if allowed_special == "all":
            return "allow", []
        allowed = set(allowed_special)
        unknown = allowed - self._specials.keys()
        if unknown:
            raise ValueError(f"allowed_special names unknown special tokens: {sorted(unknown)}")
        if disallowed_special == "all":
            mask = [s in allowed for s in self._special_index]
            return "reject", mask
        if not disallowed_special:
            # Specials not allowed are ordinary text; allowed ones become ids.
            if not allowed:
                return "ignore", []
            raise ValueError(
                "allowed_special with disallowed_special=() is ambiguous for the other "
                "special tokens; pass allowed_special='all' or leave disallowed_special='all'"
            )
        raise ValueError("disallowed_special must be 'all' or () (empty)")

    def encode(
        self,
        text: str,
        allowed_special: Specials = (),
        disallowed_special: Specials = "all",
    ) -> list[int]:
        """Token ids of ``text``.

        As in tiktoken, special-token text (e.g. ``<|endoftext|>``) is an error
        unless it is in ``allowed_special`` (or ``"all"``); with
        ``disallowed_special=()`` it is encoded as ordinary text.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        mode, mask = self._special_args(allowed_special, disallowed_special)
        return self._core.encode(text, mode, mask)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, special-token text encoded as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode_ordinary expects str, got {type(text).__name__}")
        return self._core.encode(text, "ignore", [])

    def encode_batch(
        self,
        texts: Sequence[str],
        allowed_special: Specials = (),
        disallowed_special: Specials = "all",
        *,
        failures: list | None = None,
    ) -> list[list[int]]:
        """Token ids of each text, encoded in parallel (GIL released).

        ``texts`` is a list of str or an Arrow string/binary column (pyarrow
        Array or ChunkedArray, read in place; a null is the empty text).

        A text the encoder fails on (a bug: a panic in Rust) is a
        RuntimeError naming it; with ``failures`` (a list), ``(row,
        message)`` of each such text is appended there instead and its ids
        are empty (drop it; see :mod:`fastllm._failures`)."""
        mode, mask = self._special_args(allowed_special, disallowed_special)
        ids, failed = self._core.encode_batch(_str_list(texts), mode, mask)
        hand_over("encode_batch", failed, failures)
        return ids

    def encode_to_numpy(
        self,
        texts: Sequence[str],
        allowed_special: Specials = (),
        disallowed_special: Specials = "all",
        *,
        failures: list | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All texts' ids as one flat ``uint32`` array plus ``int64`` offsets
        of length ``len(texts) + 1``: text ``i`` is ``ids[offsets[i]:offsets[i+1]]``.
        ``texts`` may be an Arrow column, and ``failures`` is handled, as for
        :meth:`encode_batch` (a failed text has no ids: equal offsets)."""
        mode, mask = self._special_args(allowed_special, disallowed_special)
        ids, offsets, failed = self._core.encode_to_numpy(_str_list(texts), mode, mask)
        hand_over("encode_to_numpy", failed, failures)
        return ids, offsets

    # ---- decoding -----------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids``; an id outside the vocabulary is a ValueError."""
        return self._core.decode_bytes(_id_list(ids))

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 become U+FFFD
        (``errors="replace"``, as tiktoken does)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ---- vocabulary ---------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """One more than the largest id (special tokens included)."""
        return self._core.vocab_size

    n_vocab = vocab_size

    @property
    def pattern(self) -> str:
        return self._core.pattern

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token`` in Hugging Face spelling (``"Ġthe"``) or of a
        special token; None when absent."""
        if token in self._specials:
            return self._specials[token]
        try:
            raw = bytes(_CHAR_TO_BYTE[c] for c in token)
        except KeyError:
            return None
        return self._core.token_id(raw)

    def id_to_token(self, id: int) -> str | None:
        """Token ``id`` in Hugging Face spelling; None when the id is unused."""
        raw = self._core.token_bytes(int(id))
        if raw is None:
            return None
        for name, sid in self._specials.items():
            if sid == id:
                return name
        return "".join(_BYTE_TO_CHAR[b] for b in raw)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, specials={len(self._specials)})"


def _str_list(texts: Sequence[str]) -> list[str]:
    if is_arrow(texts):
        return text_column(texts, "texts")
    if isinstance(texts, str):
        raise TypeError("expected a sequence of str, got a single str")
    texts = texts if isinstance(texts, list) else list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return texts


def _id_list(ids: Iterable[int]) -> list[int]:
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64, copy=False).tolist()
    return [int(i) for i in ids]
