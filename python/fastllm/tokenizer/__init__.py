"""Byte-level BPE: the :class:`Tokenizer` (:mod:`fastllm.tokenizer.tokenizer`)
and its trainer (:mod:`fastllm.tokenizer.train`)."""

from fastllm.tokenizer.tokenizer import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN, Tokenizer

__all__ = ["GPT2_PATTERN", "GPT4_PATTERN", "O200K_PATTERN", "Tokenizer"]
