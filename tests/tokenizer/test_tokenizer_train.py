"""``Tokenizer.train``: the Python API over the Rust trainer, end to end
against HF tokenizers' BpeTrainer (merges, vocabulary, encodings)."""

from __future__ import annotations

import gzip
import json

import pytest

from fastllm import Tokenizer
from fastllm.tokenizer import GPT4_PATTERN

# HF's regex engine (Oniguruma) reads the possessive `{1,3}+` as a repeated
# group; `{1,3}` means what PCRE2 and tiktoken read in `{1,3}+`.
HF_GPT4_PATTERN = GPT4_PATTERN.replace("{1,3}+", "{1,3}")


def _hf_train(docs, vocab_size, specials=("<|endoftext|>",), min_frequency=2):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(HF_GPT4_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(docs, trainer)
    return hf


@pytest.fixture(scope="module")
def wiki_file(shared_data):
    return shared_data / "text" / "wiki-news-speech-00.jsonl.gz"


@pytest.fixture(scope="module")
def wiki_docs(wiki_file):
    with gzip.open(wiki_file, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def test_trained_from_a_file_equals_hf(wiki_file, wiki_docs, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    train, held_out = wiki_docs[:200], wiki_docs[200:260]
    ours = Tokenizer.train([wiki_file], 3000, show_progress=False)  # streams the whole file
    ref = _hf_train(wiki_docs, 3000)
    a = json.loads(ours.to_json())["model"]
    b = json.loads(ref.to_str())["model"]
    assert a["merges"] == [list(m) for m in b["merges"]]
    assert a["vocab"] == b["vocab"]
    assert ours.encode_batch(held_out) == [e.ids for e in ref.encode_batch(held_out)]
    # The saved file loads in HF and encodes the same there.
    ours.save(tmp_path / "tok.json")
    again = tokenizers.Tokenizer.from_file(str(tmp_path / "tok.json"))
    assert [e.ids for e in again.encode_batch(train[:20])] == ours.encode_batch(train[:20])


def test_iterable_of_str_with_progress(wiki_docs, capsys):
    tok = Tokenizer.train(iter(wiki_docs[:50]), 600, show_progress=True)
    assert tok.vocab_size == 600
    assert tok.special_tokens == {"<|endoftext|>": 0}
    text = wiki_docs[0][:2000]
    assert tok.decode(tok.encode(text)) == text
    assert "merging" in capsys.readouterr().err


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        Tokenizer.train(["abc"], 100, show_progress=False)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        Tokenizer.train(["abc", 3], 300, show_progress=False)
    with pytest.raises(TypeError, match="not a single str"):
        Tokenizer.train("abc", 300, show_progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        Tokenizer.train(["abc"], 300, special_tokens=["<a>", "<a>"], show_progress=False)
    with pytest.raises(ValueError, match="min_frequency"):
        Tokenizer.train(["abc"], 300, min_frequency=-1, show_progress=False)


def test_bad_files_are_named(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        Tokenizer.train([missing], 300, show_progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        Tokenizer.train([bad], 300, show_progress=False)
