"""Arrow columns into the batch kernels (python/fastllm/_arrow.py and
rust/src/python/arrow.rs): every kernel gives the same answer for a pyarrow
column as for the same texts in a Python list, whatever the column's type,
chunking, slice offset and nulls, and the column is read in place."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.data.config import DedupConfig
from fastllm.data.dedup import content_hashes, minhash, near_duplicate_clusters
from fastllm.data.extract import extract_batch
from fastllm.data.filters import filter_stage, quality_filter
from fastllm.data.langid import detect_languages
from fastllm.data.pii import mask_pii

_WORDS = (
    "the of and to in is was that for on with as by at from his her this which "
    "river city market season history garden council library engine valley "
    "people report music winter village station harbour forest museum"
).split()


def _doc(rng: random.Random) -> str:
    """A page-like text: sentences in lines and paragraphs, sometimes a line
    C4 removes (javascript, no terminal punctuation), sometimes PII."""
    paras = []
    for _ in range(rng.randint(1, 6)):
        lines = []
        for _ in range(rng.randint(1, 5)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 18))]
            line = " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", ""])
            lines.append(line)
        if rng.random() < 0.2:
            lines.append("Please enable JavaScript to view this page.")
        if rng.random() < 0.2:
            lines.append(f"Write to {rng.choice(_WORDS)}@example.com or call +1 415 555 0134.")
        paras.append("\n".join(lines))
    return "\n\n".join(paras)


@pytest.fixture(scope="module")
def docs() -> list[str]:
    rng = random.Random(7)
    out = [_doc(rng) for _ in range(120)]
    out[3] = ""
    out[5] = "Le chat est assis sur le tapis et regarde la rivière couler doucement."
    out[8] = "héllo wörld ✓ 東京 " * 20
    return out


TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.string_view()]


def _variants(texts: list[str | None]):
    """(name, column, the list it stands for) for each way a column comes."""
    for t in TYPES:
        yield str(t), pa.array(texts, t), texts
    arr = pa.array(texts, pa.string())
    # Slices with an offset into the buffers: the classic import bug.
    yield "slice", arr.slice(7, 50), texts[7:57]
    yield "slice-large", pa.array(texts, pa.large_binary()).slice(3), texts[3:]
    yield "empty-slice", arr.slice(10, 0), []
    chunked = pa.chunked_array([arr.slice(0, 11), arr.slice(11, 1), arr.slice(12)])
    yield "chunked", chunked, texts
    yield "chunked-sliced", chunked.slice(9, 40), texts[9:49]
    yield "chunked-empty", pa.chunked_array([], pa.string()), []


def _with_nulls(texts: list[str]) -> list[str | None]:
    out: list[str | None] = list(texts)
    for k in (0, 4, 17, len(out) - 1):
        out[k] = None
    return out


def _fixed(texts):
    return [t if t is not None else "" for t in texts]


@pytest.mark.parametrize("nulls", [False, True])
def test_quality_filter_arrow_equals_list(docs, nulls):
    texts = _with_nulls(docs) if nulls else docs
    for name, col, want in _variants(texts):
        res, ref = quality_filter(col), quality_filter(want)
        assert res == ref, name
    if nulls:
        assert quality_filter(pa.array(texts)).reasons[0] == "null"
    # Some documents are kept, some dropped, some shortened by C4.
    ref = quality_filter(docs)
    assert any(ref.keep) and not all(ref.keep)
    assert any(t is not None for t in ref.texts)


def test_filter_stage_keeps_unchanged_texts_in_place(docs):
    texts = _with_nulls(docs)
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    chunked = pa.concat_tables([table.slice(0, 30), table.slice(30)])
    res = quality_filter(texts)
    want_ids = [k for k, r in enumerate(res.reasons) if r is None]
    want_texts = [res.texts[k] if res.texts[k] is not None else texts[k] for k in want_ids]
    for t in (table, chunked):
        kept, counts = filter_stage(t)
        assert kept.column("id").to_pylist() == want_ids
        assert kept.column("text").to_pylist() == want_texts
        assert kept.schema == t.schema
        assert counts["null"] == 4
        assert sum(counts.values()) == len(texts) - len(want_ids)


@pytest.mark.parametrize("nulls", [False, True])
def test_langid_and_pii_arrow_equal_list(docs, nulls):
    texts = _with_nulls(docs) if nulls else docs
    for name, col, want in _variants(texts):
        assert detect_languages(col) == detect_languages(want), name
        assert mask_pii(col) == mask_pii(want), name
    if nulls:
        assert detect_languages(pa.array(texts)).codes[0] is None
        assert mask_pii(pa.array(texts))[0] is None


@pytest.mark.parametrize("nulls", [False, True])
def test_dedup_arrow_equals_list_nulls_as_empty(docs, nulls):
    texts = _with_nulls(docs) if nulls else docs
    texts = texts + texts[10:20]  # some exact and near duplicates
    for name, col, want in _variants(texts):
        want = _fixed(want)
        assert np.array_equal(content_hashes(col), content_hashes(want)), name
        assert np.array_equal(minhash(col, 32), minhash(want, 32)), name
    col = pa.chunked_array([pa.array(texts[:50]), pa.array(texts[50:])])
    cfg = DedupConfig(threshold=0.7, num_perm=64)
    assert np.array_equal(
        near_duplicate_clusters(col, cfg), near_duplicate_clusters(_fixed(texts), cfg)
    )


@pytest.fixture(scope="module")
def tok(docs) -> Tokenizer:
    return Tokenizer.train(docs, 400)


def test_tokenizer_arrow_equals_list(docs, tok):
    texts = _with_nulls(docs)
    for name, col, want in _variants(texts):
        want = _fixed(want)
        ids, off = tok.encode_to_numpy(col)
        rids, roff = tok.encode_to_numpy(want)
        assert np.array_equal(ids, rids) and np.array_equal(off, roff), name
        assert tok.encode_batch(col) == tok.encode_batch(want), name


def test_extract_arrow_equals_list():
    pages = [
        f"<html lang='en'><head><title>T{k}</title></head><body><article>"
        f"<p>{f'Paragraph number {k} of a long enough article body. ' * 8}</p>"
        "</article></body></html>"
        for k in range(40)
    ]
    pages[6] = "<p>   </p>"
    raw = [p.encode() for p in pages]
    want = extract_batch(raw)
    arr = pa.array(raw, pa.binary())
    for name, col, exp in [
        ("binary", arr, want.texts),
        ("large_string", pa.array(pages, pa.large_string()), want.texts),
        ("binary_view", pa.array(raw, pa.binary_view()), want.texts),
        ("slice", arr.slice(5, 20), want.texts[5:25]),
        ("chunked", pa.chunked_array([arr.slice(0, 3), arr.slice(3)]), want.texts),
    ]:
        assert extract_batch(col).texts.to_pylist() == exp, name
    nulls = pa.array(raw[:3] + [None] + raw[4:], pa.binary())
    assert extract_batch(nulls).texts.to_pylist() == want.texts[:3] + [None] + want.texts[4:]


def test_invalid_utf8_in_binary_is_replaced():
    raw = [b"Valid words and more valid words here.", b"bad \xff\xfe bytes \xc3( end.", b""]
    decoded = [r.decode("utf-8", "replace") for r in raw]
    col = pa.array(raw, pa.binary())
    assert quality_filter(col) == quality_filter(decoded)
    assert mask_pii(col) == decoded
    assert detect_languages(col) == detect_languages(decoded)
    assert np.array_equal(content_hashes(col), content_hashes(decoded))


def test_dictionary_and_other_producers():
    texts = ["alpha beta gamma", "delta", None, "alpha beta gamma"]
    dict_col = pa.array(texts).dictionary_encode()
    assert detect_languages(dict_col) == detect_languages(texts)

    class Producer:
        """A non-pyarrow object that only speaks the PyCapsule interface."""

        def __init__(self, obj):
            self.obj = obj

        def __arrow_c_stream__(self, requested_schema=None):
            return self.obj.__arrow_c_stream__(requested_schema)

    chunked = pa.chunked_array([pa.array(texts[:1]), pa.array(texts[1:])])
    assert mask_pii(Producer(chunked)) == mask_pii(texts)


def test_wrong_arrow_type_is_a_type_error():
    with pytest.raises(TypeError, match="string or binary"):
        quality_filter(pa.array([1, 2, 3]))
    with pytest.raises(TypeError, match="string or binary"):
        content_hashes(pa.array([1.0]))


def test_large_column_is_not_copied_into_python():
    # 64 documents of 1 MiB: converting them to Python str (to_pylist) would
    # allocate ~64 MiB that tracemalloc sees; reading the Arrow buffers in
    # place allocates only the small results.
    row = ("word " * 200_000).encode()
    col = pa.array([row] * 64, pa.binary()).slice(1)
    want = content_hashes([row.decode()])[0]
    tracemalloc.start()
    try:
        hashes = content_hashes(col)
        reasons = quality_filter(col).reasons
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
    assert (hashes == want).all() and len(reasons) == 63


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30),
    cut=st.integers(0, 30),
    start=st.integers(0, 30),
    large=st.booleans(),
)
def test_slices_and_chunks_match_lists(texts, cut, start, large):
    typ = pa.large_string() if large else pa.string()
    # Surrogates cannot be stored in Arrow; they would be replaced anyway.
    texts = [t.encode("utf-8", "replace").decode() if t is not None else None for t in texts]
    arr = pa.array(texts, typ)
    cut = min(cut, len(texts))
    col = pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], typ).slice(min(start, len(texts)))
    want = texts[min(start, len(texts)) :]
    assert mask_pii(col) == mask_pii(want)
    assert np.array_equal(content_hashes(col), content_hashes(_fixed(want)).reshape(-1, 2))
