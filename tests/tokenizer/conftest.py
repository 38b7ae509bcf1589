"""Reference tokenizers (HF tokenizers, tiktoken) and ours, loaded once."""

from __future__ import annotations

import gzip
import json

import pytest

from fastllm import Tokenizer
from fastllm.tokenizer import GPT4_PATTERN, O200K_PATTERN

CL100K_SPECIALS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
O200K_SPECIALS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}


def _tiktoken(path, name, pattern, specials):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path))
    return tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
    )


@pytest.fixture(scope="session")
def gpt2_pair(shared_data):
    tokenizers = pytest.importorskip("tokenizers")
    path = shared_data / "tokenizers" / "gpt2" / "tokenizer.json"
    return Tokenizer.from_file(path), tokenizers.Tokenizer.from_file(str(path))


@pytest.fixture(scope="session")
def cl100k_pair(shared_data):
    path = shared_data / "tokenizers" / "tiktoken" / "cl100k_base.tiktoken"
    ours = Tokenizer.from_tiktoken(path, GPT4_PATTERN, CL100K_SPECIALS)
    return ours, _tiktoken(path, "cl100k_base", GPT4_PATTERN, CL100K_SPECIALS)


@pytest.fixture(scope="session")
def o200k_pair(shared_data):
    path = shared_data / "tokenizers" / "tiktoken" / "o200k_base.tiktoken"
    ours = Tokenizer.from_tiktoken(path, O200K_PATTERN, O200K_SPECIALS)
    return ours, _tiktoken(path, "o200k_base", O200K_PATTERN, O200K_SPECIALS)


@pytest.fixture(scope="session")
def corpus(shared_data) -> list[str]:
    """Every document of ../shared/data/text."""
    docs = []
    for f in sorted((shared_data / "text").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            docs.extend(json.loads(line)["text"] for line in fh if line.strip())
    return docs
