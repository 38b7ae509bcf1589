"""Awkward inputs: empty, tiny, unspaced scripts, huge, massively repeated; bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from fastllm import _core
from fastllm.data import dedup
from fastllm.data.config import ConfigError, DedupConfig


def test_empty_batch():
    assert dedup.minhash([]).shape == (0, 128)
    assert dedup.near_duplicate_clusters([]).tolist() == []
    assert dedup.exact_duplicates([]).tolist() == []


def test_empty_and_punctuation_only_documents_cluster_together():
    sigs = dedup.minhash(["", "  ", "...!"])
    assert (sigs == np.iinfo(np.uint64).max).all()
    assert dedup.near_duplicate_clusters(["", "a real document here", " ", "?!"]).tolist() == [
        0,
        1,
        0,
        0,
    ]


def test_one_word_and_shorter_than_ngram_documents():
    texts = ["hello", "Hello!", "world", "hello world", "HELLO   world.", "hello there"]
    assert dedup.near_duplicate_clusters(texts, DedupConfig(ngram=5)).tolist() == [0, 0, 2, 3, 3, 5]


def test_cjk_uses_character_ngrams():
    a = "我们今天在北京的天安门广场看升旗仪式然后去吃烤鸭" * 3
    b = a.replace("烤鸭", "火锅", 1)
    c = "完全不同的一段中文内容没有任何重复的地方真的没有" * 3
    words = _core.dedup_words(a)
    assert all(len(w) == 1 for w in words)
    got = dedup.near_duplicate_clusters([a, b, c], DedupConfig(threshold=0.7))
    assert got.tolist() == [0, 0, 2]


def test_ten_megabyte_document():
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    big = " ".join(vocab[rng.integers(0, len(vocab), 1_800_000)])
    assert len(big) > 10_000_000
    edited = big[:-1000] + " tail"
    got = dedup.near_duplicate_clusters([big, "short doc", edited])
    assert got.tolist() == [0, 1, 0]


def test_ten_thousand_identical_documents():
    texts = ["the same document, over and over again, ten thousand times"] * 10_000
    texts.append("and one that is different from all of the others")
    got = dedup.near_duplicate_clusters(texts)
    assert (got[:-1] == 0).all() and got[-1] == 10_000
    assert dedup.exact_duplicates(texts)[:-1].max() == 0


def test_invalid_utf8_is_a_type_error_not_a_panic():
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        dedup.minhash(["ok", b"\xff"])
    # Lone surrogates cannot be UTF-8: an error, not a crash.
    with pytest.raises(UnicodeEncodeError):
        dedup.minhash(["\ud800"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_perm": 0}, "num_perm"),
        ({"ngram": 0}, "ngram"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"seed": -1}, "seed"),
        ({"bands": 20, "rows": 10}, "bands"),
        ({"bands": 4}, "bands and rows"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    # The dedup config is checked when it is made, before any kernel runs.
    with pytest.raises(ConfigError, match=f"dedup.*{match}"):
        DedupConfig(**kwargs)


def test_bad_arguments_at_the_binding_are_value_errors():
    # Past the Python checks, the Rust errors still name the argument.
    with pytest.raises(ValueError, match="num_perm"):
        _core.minhash(["x"], 0, 5, 0)
    with pytest.raises(ValueError, match="bands and rows"):
        _core.near_duplicate_clusters(["x"], 0.8, 16, 5, 0, True, 5, 5)
    with pytest.raises(ValueError, match="threshold"):
        _core.lsh_params(2.0, 128, 0.5, 0.5)
    with pytest.raises(ValueError, match="num_perm must be in"):
        _core.lsh_params(0.8, 10**6, 0.5, 0.5)
    with pytest.raises(ValueError, match="num_perm must be in"):
        dedup.lsh_params(0.8, 10**6)
    with pytest.raises(ValueError, match="out of range"):
        _core.union_find(2, np.array([0], np.uint64), np.array([5], np.uint64))
    with pytest.raises(ValueError, match="signatures"):
        dedup.clusters_from_signatures(np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="single str"):
        dedup.minhash("not a list")
