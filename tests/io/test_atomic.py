"""Atomic writes: the whole new content or the old one, never a torn file,
no temporary left behind, and the files a user gets are not private."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from fastllm.io.atomic import (
    atomic_dir,
    atomic_open,
    atomic_path,
    commit_dir,
    fresh_dir,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_whole_files_and_their_directory(tmp_path):
    write_text_atomic(tmp_path / "a" / "b.txt", "héllo\n")
    assert (tmp_path / "a" / "b.txt").read_bytes() == "héllo\n".encode()
    write_bytes_atomic(tmp_path / "c.bin", b"\x00\xff")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    write_json_atomic(tmp_path / "d.json", {"b": 1, "a": [1]}, sort_keys=True)
    assert (tmp_path / "d.json").read_text() == json.dumps({"a": [1], "b": 1}, indent=2) + "\n"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "a") == []


def test_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "x", "x")
        with atomic_path(tmp_path / "y") as tmp:
            tmp.write_text("y")
    finally:
        os.umask(old)
    for name in ("x", "y"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_a_failed_streaming_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.npy"
    with atomic_open(target) as f:
        np.save(f, np.arange(3))
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target) as f:
            f.write(b"half a file")
            raise RuntimeError("boom")
    assert np.load(target).tolist() == [0, 1, 2]
    assert _leftovers(tmp_path) == []


def test_text_mode_and_bad_modes(tmp_path):
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("ü\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "ü\n"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "t.txt", "a"):
            pass


def test_the_temporary_is_a_dot_tmp_file_beside_the_target(tmp_path):
    # What a directory scan (the pipeline's work/ cleanup) recognizes.
    with atomic_path(tmp_path / "out.parquet") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.parquet.") and tmp.name.endswith(".tmp")
        assert not (tmp_path / "out.parquet").exists()
        tmp.write_bytes(b"x")
    assert (tmp_path / "out.parquet").read_bytes() == b"x"


def test_a_directory_is_published_as_one(tmp_path):
    target = tmp_path / "shards"
    with atomic_dir(target) as d:
        assert d.name == ".shards.tmp"
        (d / "a").write_text("1")
        (d / "sub").mkdir()
        (d / "sub" / "b").write_text("2")
        assert not target.exists()
    assert (target / "a").read_text() == "1" and (target / "sub" / "b").read_text() == "2"
    # A second version replaces the first whole; a failed one leaves it.
    with atomic_dir(target) as d:
        (d / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    with pytest.raises(KeyError):
        with atomic_dir(target) as d:
            (d / "half").write_text("x")
            raise KeyError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert _leftovers(tmp_path) == []


def test_commit_dir_over_an_old_one(tmp_path):
    tmp = fresh_dir(tmp_path / ".x.tmp")
    (tmp / "new").write_text("n")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "old").write_text("o")
    commit_dir(tmp, tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["new"]
    assert _leftovers(tmp_path) == []
