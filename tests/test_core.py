"""The Rust core across the boundary: version, threads, errors, fork safety."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastllm
from fastllm import _core
from fastllm.data import dedup


def test_one_version():
    assert fastllm.__version__ == _core.__version__
    assert fastllm.__version__.count(".") >= 2


def test_thread_count_round_trip():
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(1)
        assert fastllm.get_num_threads() == 1
        fastllm.set_num_threads(3)
        assert fastllm.get_num_threads() == 3
    finally:
        fastllm.set_num_threads(before)


def test_rust_error_crosses_as_value_error():
    # Straight to the binding, past the Python-side check: the Rust error
    # must arrive as ValueError with a message that names the argument.
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        _core.set_num_threads(0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fastllm.set_num_threads(0)
    with pytest.raises(TypeError):
        _core.content_hashes([b"bytes are not str"])


def test_content_hashes_normalize():
    h = dedup.content_hashes(["Hello, World!", "hello world", "hello  world.", "other"])
    assert h.shape == (4, 2) and h.dtype == np.uint64
    assert (h[0] == h[1]).all() and (h[1] == h[2]).all()
    assert not (h[0] == h[3]).all()
    raw = dedup.content_hashes(["Hello, World!", "hello world"], normalize=False)
    assert not (raw[0] == raw[1]).all()


@given(st.lists(st.text(max_size=50), max_size=30))
def test_exact_duplicates_match_python_reference(texts):
    got = dedup.exact_duplicates(texts, normalize=False)
    first: dict[str, int] = {}
    want = [first.setdefault(t, i) for i, t in enumerate(texts)]
    assert got.tolist() == want


@given(st.lists(st.text(max_size=40), min_size=1, max_size=40))
def test_hashes_do_not_depend_on_thread_count(texts):
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(1)
        one = dedup.content_hashes(texts)
        fastllm.set_num_threads(2)
        two = dedup.content_hashes(texts)
    finally:
        fastllm.set_num_threads(before)
    assert (one == two).all()


def _child(q):
    q.put(dedup.content_hashes(["a", "b", "c"] * 100).shape)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_pool_survives_fork():
    # Use the pool in the parent first, so that the child inherits a pool
    # whose threads it does not have.
    dedup.content_hashes(["warm"] * 1000)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == 0, "child hung or crashed using the inherited pool"
    assert q.get(timeout=5) == (300, 2)
