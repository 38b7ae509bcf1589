"""Encoding parity with the references, round trips, and bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastllm
from fastllm import Tokenizer
from tests import panics
from tests.panics import panicking_tokenizer

# Strings that stress pre-tokenization and merging: emoji (with ZWJ and
# skin tones), CJK, combining marks, control characters, whitespace runs of
# every kind, contractions in odd cases, digits, mixed scripts.
PIECES = [
    "a", "The", " quick", "don't", "I'M", "we'LL", "'s", "ſ", "K", "ǅ", "ß", "İ",
    "日本語", "中文字", "한국어", "العربية", "עברית", "ไทย", "हिन्दी", "Ελληνικά", "кириллица",
    "👍🏽", "👨‍👩‍👧", "🇩🇪", "e\u0301", "\u0300", "\u200d", "\ufeff", "\u00ad",
    " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b",
    "\u000c", "\u180e", "\u200b", "\x00", "\x1f", "\x7f",
    "123", "4567", "٣٤", "½", "Ⅻ", "3.14", "!!", "...", "?!", "<", "|", ">", "/", "\\",
    "endoftext", "<|", "|>",
]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=100),
)
fast = settings(max_examples=int(os.environ.get("FASTLLM_HYPOTHESIS_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(texts)
def test_gpt2_matches_hf_tokenizers(gpt2_pair, text):
    ours, ref = gpt2_pair
    assert ours.encode(text, allowed_special="all") == ref.encode(text).ids


@fast
@given(texts)
def test_cl100k_matches_tiktoken(cl100k_pair, text):
    ours, ref = cl100k_pair
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


@fast
@given(texts)
@example("  \u180e")  # U+180E: PCRE2's \s has it, Unicode White_Space does not
def test_o200k_matches_tiktoken(o200k_pair, text):
    ours, ref = o200k_pair
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


@fast
@given(st.text())
def test_decode_inverts_encode(gpt2_pair, text):
    ours, _ = gpt2_pair
    assert ours.decode(ours.encode(text, disallowed_special=())) == text


def _first_mismatch(ours: list[list[int]], ref: list[list[int]], docs: list[str]):
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if a != b:
            return i, docs[i][:200]
    return None


def test_whole_corpus_gpt2(gpt2_pair, corpus):
    ours, ref = gpt2_pair
    got = ours.encode_batch(corpus, allowed_special="all")
    want = [e.ids for e in ref.encode_batch(corpus)]
    assert _first_mismatch(got, want, corpus) is None


@pytest.mark.parametrize("pair", ["cl100k_pair", "o200k_pair"])
def test_whole_corpus_tiktoken(pair, corpus, request):
    ours, ref = request.getfixturevalue(pair)
    got = ours.encode_batch(corpus, disallowed_special=())
    want = ref.encode_ordinary_batch(corpus, num_threads=2)
    assert _first_mismatch(got, want, corpus) is None


def test_batch_and_numpy_forms_agree(cl100k_pair):
    ours, _ = cl100k_pair
    docs = ["Hello world", "", "日本語のテキスト", "x" * 1000]
    batch = ours.encode_batch(docs)
    assert batch == [ours.encode(d) for d in docs]
    ids, offsets = ours.encode_to_numpy(docs)
    assert ids.dtype == np.uint32 and offsets.dtype == np.int64
    assert offsets.tolist() == [0, *np.cumsum([len(b) for b in batch]).tolist()]
    assert ids.tolist() == [i for b in batch for i in b]


def test_results_do_not_depend_on_thread_count(cl100k_pair, corpus):
    ours, _ = cl100k_pair
    docs = corpus[::25]
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(1)
        one = ours.encode_batch(docs, disallowed_special=())
        fastllm.set_num_threads(2)
        two = ours.encode_batch(docs, disallowed_special=())
    finally:
        fastllm.set_num_threads(before)
    assert one == two


@pytest.mark.parametrize(
    "text",
    ["a" * 1_000_000, " " * 1_000_000, "中" * 333_334, "ab " * 333_334],
    ids=["a*1M", "space*1M", "cjk*1M", "ab*1M"],
)
def test_pathological_inputs_match_reference(cl100k_pair, text):
    # Each is one huge pre-token (or a million small ones): the heap merge
    # must give tiktoken's answer. (Speed is measured in the bench.)
    ours, ref = cl100k_pair
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


def test_special_tokens_policy(cl100k_pair):
    ours, ref = cl100k_pair
    text = "a<|endoftext|>b"
    with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
        ours.encode(text)
    assert ours.encode(text, allowed_special={"<|endoftext|>"}) == ref.encode(
        text, allowed_special={"<|endoftext|>"}
    )
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert ours.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    with pytest.raises(ValueError, match="unknown special"):
        ours.encode(text, allowed_special={"<|nope|>"})


def test_vocabulary_lookups(gpt2_pair):
    ours, ref = gpt2_pair
    assert ours.vocab_size == ref.get_vocab_size() == 50257
    assert ours.special_tokens == {"<|endoftext|>": 50256}
    for tok in ["Ġthe", "hello", "<|endoftext|>", "Ċ", "Ġ"]:
        assert ours.token_to_id(tok) == ref.token_to_id(tok)
        assert ours.id_to_token(ours.token_to_id(tok)) == tok
    assert ours.token_to_id("not-a-token-at-all") is None
    assert ours.id_to_token(10**6) is None


def test_decode_rejects_bad_ids_and_replaces_bad_utf8(gpt2_pair):
    ours, _ = gpt2_pair
    with pytest.raises(ValueError, match="50257"):
        ours.decode([50257])
    with pytest.raises(ValueError, match="-1"):
        ours.decode([-1])
    # A lone continuation byte is not UTF-8: replaced, as tiktoken does.
    byte_80 = ours.token_to_id("Ģ")  # byte 0x80 in GPT-2's spelling... (any lone byte)
    raw = ours.decode_bytes([byte_80])
    assert len(raw) == 1
    assert ours.decode([byte_80]) == "\ufffd"


def test_save_loads_in_hf_and_encodes_identically(cl100k_pair, tmp_path, corpus):
    tokenizers = pytest.importorskip("tokenizers")
    ours, _ = cl100k_pair
    path = tmp_path / "cl100k" / "tokenizer.json"
    ours.save(path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    again = Tokenizer.from_file(path)
    docs = [d[:20_000] for d in corpus[::40]]
    want = ours.encode_batch(docs, disallowed_special=())
    assert [e.ids for e in hf.encode_batch(docs)] == want
    assert again.encode_batch(docs, disallowed_special=()) == want


def test_saved_file_loads_in_transformers(gpt2_pair, tmp_path, corpus):
    transformers = pytest.importorskip("transformers")
    ours, _ = gpt2_pair
    ours.save(tmp_path / "tokenizer.json")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    docs = [d[:5000] for d in corpus[::60]]
    assert [fast.encode(d, add_special_tokens=False) for d in docs] == ours.encode_batch(
        docs, allowed_special="all"
    )
    assert fast.decode(ours.encode("Hello  world")) == "Hello  world"


def test_malformed_tokenizer_files(tmp_path, shared_data):
    good = json.loads((shared_data / "tokenizers" / "gpt2" / "tokenizer.json").read_text())
    cases = {
        "truncated": (lambda: "{\"model\": {\"type\": \"BPE\"", "not valid JSON"),
        "wordpiece": (
            lambda: json.dumps({**good, "model": {**good["model"], "type": "WordPiece"}}),
            "WordPiece",
        ),
        "normalizer": (
            lambda: json.dumps({**good, "normalizer": {"type": "NFKC"}}),
            "normalizer \"NFKC\"",
        ),
        "bad merge": (
            lambda: json.dumps(
                {**good, "model": {**good["model"], "merges": ["Ġ t", "zzzq qqqz"]}}
            ),
            r"merges\[1\]",
        ),
        "no vocab": (
            lambda: json.dumps({**good, "model": {"type": "BPE", "merges": []}}),
            "model.vocab",
        ),
    }
    for name, (make, message) in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}.json"
        p.write_text(make())
        with pytest.raises(ValueError, match=message) as info:
            Tokenizer.from_file(p)
        assert str(p) in str(info.value), name
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot base64 at all\n")
    with pytest.raises(ValueError, match="line 2"):
        Tokenizer.from_tiktoken(bad, GPT4_PATTERN_FOR_TEST)


GPT4_PATTERN_FOR_TEST = fastllm.tokenizer.GPT4_PATTERN


def test_qwen_style_nfc_normalizer_matches_hf(cl100k_pair, tmp_path):
    # Qwen's tokenizer.json: NFC normalizer + Split + ByteLevel. Built here
    # from cl100k (no Qwen file in the shared data), checked against HF.
    tokenizers = pytest.importorskip("tokenizers")
    ours, _ = cl100k_pair
    doc = json.loads(ours.to_json())
    doc["normalizer"] = {"type": "NFC"}
    path = tmp_path / "qwen_style.json"
    path.write_text(json.dumps(doc))
    mine, ref = Tokenizer.from_file(path), tokenizers.Tokenizer.from_file(str(path))
    for text in ["cafe\u0301 e\u0301te\u0301", "Å vs A\u030a", "한국어 \u1100\u1161", "plain"]:
        assert mine.encode(text) == ref.encode(text).ids
    assert mine.encode("e\u0301") == mine.encode("\u00e9")


def test_a_text_the_encoder_fails_on(gpt2_pair):
    # A real panic in Rust on one text (tests/panics.py): a RuntimeError
    # naming it, or with failures=[] its row and no ids, the others intact.
    ours, _ = gpt2_pair
    tok = panicking_tokenizer(Tokenizer(ours._core))
    texts = ["hello world", f"a {panics.TOK} b", "the end"]
    with pytest.raises(RuntimeError, match=r"encode_to_numpy: internal error .*row 1: injected"):
        tok.encode_to_numpy(texts)
    with pytest.raises(RuntimeError, match="encode_batch: internal error"):
        tok.encode_batch(texts)
    failed: list = []
    ids, offsets = tok.encode_to_numpy(texts, failures=failed)
    assert [k for k, _ in failed] == [1] and "injected panic" in failed[0][1]
    assert offsets[2] == offsets[1]
    good = ours.encode_to_numpy([texts[0], texts[2]])
    assert ids.tolist() == good[0].tolist()
    failed = []
    batch = tok.encode_batch(texts, failures=failed)
    assert batch == [ours.encode(texts[0]), [], ours.encode(texts[2])]
    assert [k for k, _ in failed] == [1]
