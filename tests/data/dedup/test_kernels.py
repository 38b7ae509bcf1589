"""The Rust kernels against the pure-Python reference (tests/dedup/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import _core
from fastllm.data import dedup
from fastllm.data.config import DedupConfig

pytest.importorskip("xxhash", reason="the pure-Python reference hashes with xxhash")

from tests.data.dedup import reference as ref  # noqa: E402
from tests.data.dedup.conftest import text, threads, words_text  # noqa: E402


@settings(deadline=None)  # no wall-clock limit: the machine may be shared
@given(text)
def test_normalized_words_match_reference(t):
    assert _core.dedup_words(t) == ref.words(t)


def test_normalization_examples():
    assert _core.dedup_words("Hello,   World!\n") == ["hello", "world"]
    assert _core.dedup_words("end.Start") == ["end", "start"]
    assert _core.dedup_words("我爱Paris") == ["我", "爱", "paris"]
    assert _core.dedup_words("ΣΟΦΙΑ") == ["σοφια"]  # per character: no final sigma
    assert _core.dedup_words(" ... ") == []


@settings(deadline=None)  # no wall-clock limit: the machine may be shared
@given(text, st.integers(1, 6))
def test_shingle_hashes_match_reference(t, n):
    assert _core.shingle_hashes(t, n).tolist() == ref.shingle_hashes(t, n)


@settings(deadline=None)  # no wall-clock limit: the machine may be shared
@given(st.integers(1, 40), st.integers(0, 2**64 - 1))
def test_permutation_parameters_match_reference(num_perm, seed):
    a, b = _core.minhash_params(num_perm, seed)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == ref.params(num_perm, seed)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(text, words_text), max_size=6), st.integers(1, 5), st.integers(0, 2**64 - 1)
)
def test_minhash_matches_reference(texts, ngram, seed):
    got = dedup.minhash(texts, num_perm=16, ngram=ngram, seed=seed)
    assert got.shape == (len(texts), 16) and got.dtype == np.uint64
    want = [ref.signature(t, 16, ngram, seed) for t in texts]
    assert got.tolist() == want


def test_minhash_defaults_on_real_sentences():
    texts = ["The quick brown fox jumps over the lazy dog, again and again.", "短文本"]
    got = dedup.minhash(texts)
    assert got.shape == (2, 128)
    assert got.tolist() == [ref.signature(t, 128, 5, 0) for t in texts]
    assert (got < 2**32).all()


def _planted(draw_words, edits):
    """Documents with planted near duplicates: bases plus edited copies."""
    docs = []
    for i, base in enumerate(draw_words):
        docs.append(base)
        w = base.split()
        for k in range(edits[i % len(edits)]):
            if w:
                w[(7 * k + i) % len(w)] = f"edit{k}"
        docs.append(" ".join(w))
    return docs


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([f"w{i}" for i in range(40)]), min_size=0, max_size=60).map(
            " ".join
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([0.5, 0.7, 0.8, 0.9]),
    st.booleans(),
)
def test_clusters_match_reference(bases, threshold, verify):
    texts = _planted(bases, [0, 1, 3, 10])
    weights = dedup.VERIFIED_WEIGHTS if verify else (0.5, 0.5)
    bands, rows = dedup.lsh_params(threshold, 32, *weights)
    mode = "signature" if verify else "none"
    cfg = DedupConfig(threshold=threshold, num_perm=32, ngram=3, verify=mode)
    got = dedup.near_duplicate_clusters(texts, cfg)
    sigs = [ref.signature(t, 32, 3, 0) for t in texts]
    assert got.tolist() == ref.clusters(sigs, threshold, bands, rows, verify)


@pytest.mark.parametrize(
    "threshold,num_perm", [(0.5, 128), (0.8, 128), (0.9, 128), (0.3, 64), (0.7, 32), (0.85, 200)]
)
def test_lsh_params_equal_datasketch(threshold, num_perm):
    lsh = pytest.importorskip("datasketch.lsh")
    assert dedup.lsh_params(threshold, num_perm) == lsh._optimal_param(
        threshold, num_perm, 0.5, 0.5
    )
    assert dedup.lsh_params(threshold, num_perm, 0.1, 0.9) == lsh._optimal_param(
        threshold, num_perm, 0.1, 0.9
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(text, words_text), min_size=1, max_size=60))
def test_results_do_not_depend_on_thread_count(texts):
    texts = texts + texts[: len(texts) // 2]  # some exact duplicates
    with threads(1):
        s1 = dedup.minhash(texts, num_perm=32)
        c1 = dedup.near_duplicate_clusters(texts, DedupConfig(num_perm=32, ngram=2))
    with threads(2):
        s2 = dedup.minhash(texts, num_perm=32)
        c2 = dedup.near_duplicate_clusters(texts, DedupConfig(num_perm=32, ngram=2))
    with threads(7):
        c7 = dedup.near_duplicate_clusters(texts, DedupConfig(num_perm=32, ngram=2))
    assert (s1 == s2).all()
    assert c1.tolist() == c2.tolist() == c7.tolist()


def test_signature_clusters_equal_text_clusters():
    texts = ["alpha beta gamma delta epsilon zeta eta theta"] * 3 + ["other words here entirely"]
    sigs = dedup.minhash(texts)
    assert (
        dedup.clusters_from_signatures(sigs).tolist()
        == dedup.near_duplicate_clusters(texts).tolist()
        == [0, 0, 0, 3]
    )


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([f"w{i}" for i in range(30)]), max_size=40).map(" ".join),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0.6, 0.8]),
    st.booleans(),
)
def test_pairs_and_exact_clusters_match_reference(bases, threshold, verify):
    texts = _planted(bases, [0, 1, 2, 6])
    sigs = dedup.minhash(texts, num_perm=32, ngram=2)
    bands, rows = dedup.lsh_params(threshold, 32, *dedup.VERIFIED_WEIGHTS)
    ref_sigs = sigs.tolist()
    got = dedup.near_duplicate_pairs(sigs, threshold, verify=verify, bands=bands, rows=rows)
    assert [tuple(p) for p in got.tolist()] == ref.bucket_pairs(
        ref_sigs, threshold, bands, rows, verify
    )
    cfg = DedupConfig(threshold=threshold, num_perm=32, ngram=2)
    exact = dedup.near_duplicate_clusters(texts, cfg.replace(verify="exact"))
    assert exact.tolist() == ref.exact_clusters(texts, ref_sigs, threshold, bands, rows, 2)
    # The default verification is exact.
    default = dedup.near_duplicate_clusters(texts, cfg)
    assert default.tolist() == exact.tolist()
    # Signatures made elsewhere, verified exactly with the texts beside them
    # (what the pipeline does with its stored signatures): the same clusters.
    from_sigs = dedup.clusters_from_signatures(sigs, threshold, texts=texts, ngram=2)
    assert from_sigs.tolist() == exact.tolist()
    u, v = _core.lsh_edges(sigs, threshold, bands, rows, False)
    edges = dedup.clusters_from_edges(len(texts), u, v, texts=texts, threshold=threshold, ngram=2)
    assert edges.tolist() == exact.tolist()
    if len(got):
        jac = dedup.shingle_jaccard(texts, got, 2)
        want = [ref.jaccard(texts[a], texts[b], 2) for a, b in got.tolist()]
        assert jac.tolist() == pytest.approx(want, abs=0, rel=1e-15)


ASCII = "abcXYZ019 \t\n\r\x0b\x0c.,;!?'\"-_\x00\x1c\x7f"


@settings(deadline=None)  # no wall-clock limit: the machine may be shared
@given(st.text(alphabet=ASCII, max_size=60))
def test_normalized_exact_hash_is_xxh3_128_of_the_folded_text(t):
    import xxhash

    h = xxhash.xxh3_128_intdigest(ref.exact_fold(t).encode())
    assert dedup.content_hashes([t]).tolist() == [[h >> 64, h & (2**64 - 1)]]


def test_exact_hash_folds_long_and_non_ascii_text():
    import xxhash

    t = "İ Straße, ÉTÉ!\t" * 500
    h = xxhash.xxh3_128_intdigest(("i\u0307 straße été " * 500).strip().encode())
    assert dedup.content_hashes([t]).tolist() == [[h >> 64, h & (2**64 - 1)]]


def test_verify_modes_are_checked():
    with pytest.raises(ValueError, match="dedup.verify"):
        DedupConfig(verify="maybe")
    with pytest.raises(ValueError, match="needs the texts"):
        dedup.clusters_from_signatures(dedup.minhash(["a"]), verify="exact")
    sigs = dedup.minhash(["a b c", "a b c", "x"], num_perm=16, ngram=1)
    signed = dedup.clusters_from_signatures(sigs, verify="signature").tolist()
    assert signed == dedup.clusters_from_signatures(sigs, verify=True).tolist() == [0, 0, 2]
    with pytest.raises(ValueError, match="pairs"):
        dedup.shingle_jaccard(["a"], np.array([[0, 1]]))
