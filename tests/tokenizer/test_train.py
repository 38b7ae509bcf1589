"""BPE training (`fastllm._core.BpeTrainer`) against Hugging Face
`tokenizers.trainers.BpeTrainer`, merge for merge and id for id, and against
the pure-Python model of it in `bpe_train_ref.py`."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
from fastllm import _core

tokenizers = pytest.importorskip("tokenizers")


def _load_ref():
    path = Path(__file__).with_name("bpe_train_ref.py")
    spec = importlib.util.spec_from_file_location("bpe_train_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref = _load_ref()

# GPT-4's split pattern with `\p{N}{1,3}` for tiktoken's possessive
# `\p{N}{1,3}+`: Oniguruma (HF) reads `{1,3}+` as `({1,3})+`, i.e. any run
# of digits, so the possessive form would split numbers differently there.
PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
)


def hf_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def hf_train(texts, vocab_size, min_frequency, special_tokens):
    """HF's (merges as byte pairs, vocabulary strings in id order)."""
    from tokenizers import pre_tokenizers, trainers

    tok = hf_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    vocab = sorted(model["vocab"], key=model["vocab"].__getitem__)
    assert [model["vocab"][v] for v in vocab] == list(range(len(vocab)))
    return [(ref.to_bytes(a), ref.to_bytes(b)) for a, b in merges], vocab


def ours(texts, vocab_size, min_frequency, special_tokens, chunk=7):
    """fastllm's (merges, vocabulary strings in id order, as HF spells them)."""
    t = _core.BpeTrainer(PATTERN, vocab_size, min_frequency, list(special_tokens))
    for i in range(0, len(texts), chunk):
        t.feed(texts[i : i + chunk])
    merges, vocab = t.finish()
    n = len(dict.fromkeys(special_tokens))
    strings = [v.decode() for v in vocab[:n]]
    strings += ["".join(ref.BYTE_TO_CHAR[b] for b in v) for v in vocab[n:]]
    return merges, strings


def ref_train(texts, vocab_size, min_frequency, special_tokens):
    """The pure-Python model, on HF's own pre-tokenization."""
    tok = hf_tokenizer()
    counts: dict[bytes, int] = {}
    for text in texts:
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(text):
            b = ref.to_bytes(piece)
            counts[b] = counts.get(b, 0) + 1
    merges, vocab = ref.train(counts, vocab_size, min_frequency, tuple(special_tokens))
    strings = [v if isinstance(v, str) else "".join(ref.BYTE_TO_CHAR[b] for b in v) for v in vocab]
    for i, t in enumerate(dict.fromkeys(special_tokens)):
        strings[i] = t
    return merges, strings


# Characters whose classes (letter, number, space, other) Oniguruma and PCRE2
# agree on, so that both sides pre-tokenize alike: the trainer is under test.
CHARS = list("abcdeABZ xyz019'\".,!?-_()\n\t\r") + [
    "é",
    "ß",
    "ñ",
    "日",
    "本",
    "語",
    "😀",
    "\u0301",
    "Ж",
    "д",
    "  ",
    "\n\n",
    "   ",
]
texts_st = st.lists(st.lists(st.sampled_from(CHARS), max_size=30).map("".join), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    texts=texts_st,
    extra=st.integers(0, 80),
    min_frequency=st.integers(0, 3),
    # Specials that merges can spell ("ab", "aba", ...) make HF reuse ids,
    # which is where its queue keeps several entries per pair.
    specials=st.sampled_from(
        [(), ("<|endoftext|>",), ("<s>", "</s>", "<s>"), ("a",), ("ab", "aba", "abab", "ba")]
    ),
)
def test_small_corpora_equal_hf(texts, extra, min_frequency, specials):
    vocab_size = 256 + len(set(specials)) + extra
    expect = hf_train(texts, vocab_size, min_frequency, specials)
    got = ours(texts, vocab_size, min_frequency, specials)
    assert got[0] == expect[0]
    assert got[1] == expect[1]
    assert ref_train(texts, vocab_size, min_frequency, specials) == expect


def test_hand_checked_cases_equal_hf():
    cases = [
        (["abc abc abd"], 259, 0, ()),
        (["abc abc abd"], 300, 2, ()),
        ([" z", "xy"], 258, 0, ()),
        (["aaa bb bb"], 259, 0, ()),
        (["aaaa"], 258, 0, ()),
        (["ab ab"], 300, 0, ("ab",)),
        (["!! !!"], 300, 0, ("!",)),
        ([], 1000, 0, ("<|endoftext|>",)),
    ]
    for texts, vocab_size, mf, specials in cases:
        assert ours(texts, vocab_size, mf, specials) == hf_train(texts, vocab_size, mf, specials)


def _real_texts(shared_data: Path, limit: int) -> list[str]:
    """Documents round-robin from every text file, until `limit` bytes."""
    per_file = []
    for path in sorted((shared_data / "text").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = []
            for line in f:
                docs.append(json.loads(line)["text"][:20_000])
                if len(docs) == 40:
                    break
            per_file.append(docs)
    texts, size = [], 0
    for i in range(max(map(len, per_file))):
        for docs in per_file:
            if i < len(docs) and size < limit:
                texts.append(docs[i])
                size += len(docs[i].encode())
    return texts


@pytest.mark.parametrize("vocab_size", [2000, 4000])
def test_real_text_equal_hf(shared_data, vocab_size):
    texts = _real_texts(shared_data, 1_500_000)
    assert sum(len(t.encode()) for t in texts) > 1_000_000
    specials = ("<|endoftext|>",)
    expect = hf_train(texts, vocab_size, 2, specials)
    got = ours(texts, vocab_size, 2, specials, chunk=64)
    assert len(got[0]) == len(expect[0]) > vocab_size - 300
    assert got[0] == expect[0]
    assert got[1] == expect[1]


def test_same_result_on_one_and_two_threads(shared_data):
    texts = _real_texts(shared_data, 600_000)
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(1)
        one = ours(texts, 1500, 0, ("<|endoftext|>",))
        fastllm.set_num_threads(2)
        two = ours(texts, 1500, 0, ("<|endoftext|>",), chunk=3)
    finally:
        fastllm.set_num_threads(before)
    assert one == two


def test_progress_callback_is_called_sparingly():
    texts = [
        "the quick brown fox jumps over the lazy dog " * 3,
        "pack my box with five dozen jugs",
    ] * 5
    t = _core.BpeTrainer(PATTERN, 256 + 40, 0, [])
    t.feed(texts)
    calls = []
    merges, vocab = t.finish(lambda done, total: calls.append((done, total)))
    assert calls and len(calls) <= 41
    assert calls[-1] == (len(vocab) - 256, 40)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_progress_callback_error_is_raised():
    t = _core.BpeTrainer(PATTERN, 300, 0, [])
    t.feed(["abc abc abd"] * 3)

    def boom(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        t.finish(boom)


def test_errors_are_value_errors():
    with pytest.raises(ValueError, match="vocab_size 100"):
        _core.BpeTrainer(PATTERN, 100, 0, [])
    with pytest.raises(ValueError, match="does not compile"):
        _core.BpeTrainer("(", 300, 0, [])
    with pytest.raises(ValueError, match=r"special_tokens\[0\]"):
        _core.BpeTrainer(PATTERN, 300, 0, [""])
    t = _core.BpeTrainer(PATTERN, 300, 0, [])
    t.feed(["a b"])
    assert t.num_words == 2  # "a", " b"
    t.finish()
    with pytest.raises(ValueError, match="already"):
        t.finish()
    with pytest.raises(ValueError, match="already"):
        t.feed(["x"])


def test_returns_bytes():
    t = _core.BpeTrainer(PATTERN, 260, 0, ["<|endoftext|>"])
    t.feed(["héllo héllo wörld"])
    merges, vocab = t.finish()
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in merges)
    assert vocab[0] == b"<|endoftext|>"
    assert vocab[1] == b"!"
    assert len(vocab) == 260
    assert vocab[257:] == [a + b for a, b in merges]
