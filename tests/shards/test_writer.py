"""The Rust writer seen from Python: layout, dtype, EOS, cap, manifest, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastllm.shards import Shard, ShardSet, ShardWriter, optimal_dtype, tokenizer_sha256

from .conftest import flat, random_docs, write


def test_round_trip_and_eos_after_every_document(tmp_path):
    docs = random_docs(0, 300, 1000)
    m = write(tmp_path, docs, max_shard_bytes=2000)
    s = ShardSet(tmp_path)
    assert s.num_documents == len(docs) == m["documents"]
    for i, d in enumerate(docs):
        got = s.document(i)
        assert got[-1] == 0 and len(got) == len(d) + 1
        np.testing.assert_array_equal(got[:-1], d)
    assert m["tokens"] == sum(len(d) + 1 for d in docs) == s.num_tokens
    assert len(m["shards"]) > 1


def test_no_eos(tmp_path):
    docs = random_docs(1, 20, 1000)
    write(tmp_path, docs, eos_id=None)
    s = ShardSet(tmp_path)
    for i, d in enumerate(docs):
        np.testing.assert_array_equal(s.document(i), d)


@pytest.mark.parametrize(
    ("vocab", "dtype"), [(1000, "uint16"), (65499, "uint16"), (65500, "int32"), (200_000, "int32")]
)
def test_dtype_follows_megatron_rule(tmp_path, vocab, dtype):
    assert np.dtype(optimal_dtype(vocab)).name == dtype
    top = np.array([vocab - 1, 5, vocab - 2], dtype=np.uint32)
    m = write(tmp_path, [top], vocab=vocab, eos_id=vocab - 1)
    assert m["dtype"] == dtype
    sh = Shard(tmp_path / "shard_00000")
    assert sh.dtype.name == dtype
    np.testing.assert_array_equal(sh[0], [vocab - 1, 5, vocab - 2, vocab - 1])
    code = (tmp_path / "shard_00000.idx").read_bytes()[17]
    assert code == {"uint16": 8, "int32": 4}[dtype]


def test_ids_outside_the_vocabulary_are_rejected(tmp_path):
    w = ShardWriter(tmp_path, vocab_size=100, eos_id=0, sync=False)
    with pytest.raises(ValueError, match="token id 100 .* vocab_size 100"):
        w.add(np.array([1, 100], np.uint32), np.array([0, 2]))
    with pytest.raises(ValueError, match="offsets end at 3"):
        w.add(np.array([1, 2], np.uint32), np.array([0, 3]))
    with pytest.raises(ValueError, match="eos_id 100"):
        ShardWriter(tmp_path / "x", vocab_size=100, eos_id=100)
    w.abort()


def test_cap_and_the_over_long_document(tmp_path, caplog):
    # uint16: cap 40 bytes = 20 tokens. Docs of 9+1 tokens: two per shard.
    docs = [np.arange(1, 10, dtype=np.uint32)] * 3
    docs.insert(1, np.arange(1, 50, dtype=np.uint32))  # 50 tokens: over the cap
    m = write(tmp_path, docs, max_shard_bytes=40)
    layout = [(s["documents"], s["tokens"], s["oversized"]) for s in m["shards"]]
    assert layout == [(1, 10, False), (1, 50, True), (2, 20, False)]
    assert m["oversized_documents"] == 1
    assert "exceeds max_shard_bytes" in caplog.text
    for s in m["shards"]:
        if not s["oversized"]:
            assert s["files"][s["name"] + ".bin"]["bytes"] <= 40


def test_manifest_records_checksums_sources_and_tokenizer(tmp_path, shared_data):
    from fastllm import Tokenizer

    tok = Tokenizer.from_file(shared_data / "tokenizers" / "gpt2" / "tokenizer.json")
    with ShardWriter(tmp_path, tokenizer=tok, sync=False) as w:
        w.add_texts(["hello world", "a <|endoftext|> in text"], source="web")
        w.add_texts(["def f(): pass"], source="code")
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["dtype"] == "uint16"
    assert m["eos_id"] == tok.special_tokens["<|endoftext|>"]
    assert m["tokenizer"] == {
        "sha256": hashlib.sha256(tok.to_json().encode()).hexdigest(),
        "vocab_size": tok.vocab_size,
    }
    assert (
        tokenizer_sha256(shared_data / "tokenizers" / "gpt2" / "tokenizer.json")
        == (m["tokenizer"]["sha256"])
    )
    assert m["sources"]["web"]["documents"] == 2 and m["sources"]["code"]["documents"] == 1
    assert sum(v["tokens"] for v in m["sources"].values()) == m["tokens"]
    for s in m["shards"]:
        for name, info in s["files"].items():
            assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == info["sha256"]
    doc = ShardSet(tmp_path).document(1)
    assert tok.decode(doc[:-1].tolist()) == "a <|endoftext|> in text"
    with pytest.raises(FileExistsError, match="already finished"):
        ShardWriter(tmp_path, tokenizer=tok)


def test_large_vocab_tokenizer_writes_int32(tmp_path, shared_data):
    from fastllm import Tokenizer
    from fastllm.tokenizer import GPT4_PATTERN

    path = shared_data / "tokenizers" / "tiktoken" / "cl100k_base.tiktoken"
    tok = Tokenizer.from_tiktoken(path, GPT4_PATTERN, {"<|endoftext|>": 100257})
    with ShardWriter(tmp_path, tokenizer=tok, sync=False) as w:
        w.add_texts(["naïve café " * 20])
    assert w.manifest["dtype"] == "int32"
    ids = ShardSet(tmp_path).document(0)
    assert ids.dtype == np.int32 and ids[-1] == 100257
    assert tok.decode(ids[:-1].tolist()) == "naïve café " * 20


def test_exception_in_with_block_leaves_no_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, vocab_size=100, eos_id=0, sync=False) as w:
            w.add(*flat(random_docs(2, 10, 100)))
            assert sorted(os.listdir(tmp_path)) == ["shard_00000.bin.tmp"]
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_kill_9_mid_write_leaves_no_final_name(tmp_path):
    # A real crash: the process dies with a shard open and one published.
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from fastllm.shards import ShardWriter
        w = ShardWriter({str(tmp_path)!r}, vocab_size=100, eos_id=0, max_shard_bytes=64)
        w.add(np.arange(1, 41, dtype=np.uint32), np.array([0, 20, 40]))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()
    names = sorted(os.listdir(tmp_path))
    # Shard 0 (first document) was complete and published; shard 1 was open.
    assert names == ["shard_00000.bin", "shard_00000.idx", "shard_00001.bin.tmp"]
    assert len(Shard(tmp_path / "shard_00000")) == 1


def test_empty_input_gives_an_empty_finished_set(tmp_path):
    from fastllm.shards import PackedDataset, ShardError, verify

    m = write(tmp_path, [])
    assert (m["documents"], m["tokens"], m["shards"]) == (0, 0, [])
    assert verify(tmp_path) == []
    with pytest.raises(ShardError, match="no tokens"):
        PackedDataset(tmp_path, 8)


def test_ids_of_any_integer_dtype(tmp_path):
    with ShardWriter(tmp_path, vocab_size=70_000, eos_id=None, sync=False) as w:
        w.add(np.array([69_999, 0, 3], dtype=np.int64), [0, 1, 3])
        with pytest.raises(ValueError, match="non-negative"):
            w.add(np.array([-1]), [0, 1])
    s = ShardSet(tmp_path)
    assert [s.document(i).tolist() for i in range(2)] == [[69_999], [0, 3]]
