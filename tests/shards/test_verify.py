"""Corruption is caught and named: by the reader, by verify, by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastllm.data.__main__ import main
from fastllm.shards import PackedDataset, Shard, ShardError, ShardSet, verify

from .conftest import random_docs, write


@pytest.fixture
def shard_set(tmp_path):
    write(tmp_path, random_docs(20, 100, 1000), max_shard_bytes=1000)
    assert verify(tmp_path) == []
    return tmp_path


def test_truncated_bin(shard_set):
    b = shard_set / "shard_00001.bin"
    b.write_bytes(b.read_bytes()[:-3])
    with pytest.raises(ShardError, match=r"shard_00001\.bin: size .* says"):
        Shard(shard_set / "shard_00001")
    with pytest.raises(ShardError, match=r"shard_00001\.bin"):
        PackedDataset(shard_set, 16)
    problems = verify(shard_set)
    assert any("shard_00001.bin: size" in p for p in problems), problems


def test_flipped_byte_is_caught_by_the_checksum(shard_set):
    b = shard_set / "shard_00002.bin"
    data = bytearray(b.read_bytes())
    data[len(data) // 2] ^= 0x01
    b.write_bytes(bytes(data))
    Shard(shard_set / "shard_00002")  # the structure is intact...
    problems = verify(shard_set)  # ...but the sha256 is not
    assert problems == [f"{b}: sha256 differs from the manifest (corrupted)"]


def test_bad_magic(shard_set):
    i = shard_set / "shard_00000.idx"
    i.write_bytes(b"NOTMEGA!!" + i.read_bytes()[9:])
    with pytest.raises(ShardError, match=r"shard_00000\.idx: bad magic"):
        Shard(shard_set / "shard_00000")
    assert any("shard_00000.idx: bad magic" in p for p in verify(shard_set))


def test_truncated_idx_and_bad_version(shard_set):
    i = shard_set / "shard_00000.idx"
    raw = i.read_bytes()
    i.write_bytes(raw[:-8])
    with pytest.raises(ShardError, match=r"shard_00000\.idx: size .* does not match its header"):
        Shard(shard_set / "shard_00000")
    i.write_bytes(raw[:20])
    with pytest.raises(ShardError, match=r"shard_00000\.idx: truncated"):
        Shard(shard_set / "shard_00000")
    i.write_bytes(raw[:9] + (2).to_bytes(8, "little") + raw[17:])
    with pytest.raises(ShardError, match=r"shard_00000\.idx: version 2"):
        Shard(shard_set / "shard_00000")


def test_pointer_corruption(shard_set):
    i = shard_set / "shard_00000.idx"
    raw = bytearray(i.read_bytes())
    n = int.from_bytes(raw[18:26], "little")
    raw[34 + 4 * n + 8] ^= 0x10  # second pointer
    i.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match="pointers do not follow the sizes"):
        Shard(shard_set / "shard_00000")


def test_missing_and_stray_files(shard_set):
    (shard_set / "shard_00003.idx").rename(shard_set / "extra_00000.idx")
    problems = verify(shard_set)
    assert any(p.endswith("shard_00003.idx: missing") for p in problems), problems
    assert any("extra_00000.idx: shard file not in the manifest" in p for p in problems)
    (shard_set / "manifest.json").unlink()
    assert verify(shard_set) == [
        f"{shard_set / 'manifest.json'}: missing (not a finished shard set)"
    ]
    with pytest.raises(ShardError, match="manifest.json: missing"):
        ShardSet(shard_set)


def test_manifest_totals_and_version(shard_set):
    m = json.loads((shard_set / "manifest.json").read_text())
    m["tokens"] += 1
    (shard_set / "manifest.json").write_text(json.dumps(m))
    assert any("totals" in p for p in verify(shard_set))
    m["format_version"] = 99
    (shard_set / "manifest.json").write_text(json.dumps(m))
    assert "format_version 99" in verify(shard_set)[0]


def test_cli_exit_codes(shard_set, capsys):
    assert main(["verify", str(shard_set)]) == 0
    assert "ok:" in capsys.readouterr().out
    b = shard_set / "shard_00001.bin"
    b.write_bytes(b"\x00" + b.read_bytes()[1:])
    assert main(["verify", "-q", str(shard_set)]) == 1
    assert f"error: {b}: sha256 differs" in capsys.readouterr().err


def test_cli_as_a_module(shard_set):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "fastllm.data", "verify", str(shard_set)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (shard_set / "shard_00000.bin").write_bytes(b"")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "shard_00000.bin" in r.stderr
