"""``dedup.mode = "disk"`` (out of core, in work/) keeps the same documents
as the in-memory mode, and a rerun resumes its state instead of redoing it."""

from __future__ import annotations

import json

from fastllm.shards import verify

from .conftest import make_corpus, prose, report, run_cli, run_subprocess, sha256_dir


def test_disk_equals_memory_and_resumes(tmp_path, tokenizer_path):
    corpus = make_corpus(tmp_path)
    # More near duplicates, spread over two units, and a unit with no survivors.
    with open(corpus / "e.jsonl", "w") as f:
        for i in range(6):
            words = prose(200 + i % 2, 80).split()
            words[10 + i] = "zebra"
            f.write(json.dumps({"text": " ".join(words)}) + "\n")
    (corpus / "f.jsonl").write_text(json.dumps({"text": "tiny"}) + "\n")
    args = ["--input", corpus, "--tokenizer", tokenizer_path, "--filter.min_chars", "20"]
    args += ["--input.batch_size", "4"]
    assert run_cli(*args, "--output", tmp_path / "mem") == 0
    assert run_cli(*args, "--output", tmp_path / "disk", "--dedup.mode", "disk") == 0
    mem, disk = report(tmp_path / "mem"), report(tmp_path / "disk")
    assert disk["stages"]["dedup"] == {
        **mem["stages"]["dedup"],
        "seconds": disk["stages"]["dedup"]["seconds"],
    }
    assert mem["stages"]["dedup"]["dropped"]["near_duplicate"] >= 3
    assert verify(tmp_path / "disk" / "shards") == []
    assert sha256_dir(tmp_path / "disk" / "shards") == sha256_dir(tmp_path / "mem" / "shards")

    # A rerun after the shards are lost reuses the finished dedup state.
    (ddir,) = (tmp_path / "disk" / "work").glob("dedup-*")
    labels = ddir / "ooc" / "labels.npy"
    mtime = labels.stat().st_mtime_ns
    (tmp_path / "disk" / "report.json").unlink()
    assert run_cli(*args, "--output", tmp_path / "disk", "--dedup.mode", "disk") == 0
    assert labels.stat().st_mtime_ns == mtime
    assert sha256_dir(tmp_path / "disk" / "shards") == sha256_dir(tmp_path / "mem" / "shards")
    # A changed input gives a new dedup state; the stale one is removed.
    (corpus / "c.txt").write_text(prose(1000, 60))
    (tmp_path / "disk" / "report.json").unlink()
    assert run_cli(*args, "--output", tmp_path / "disk", "--dedup.mode", "disk") == 0
    (new,) = (tmp_path / "disk" / "work").glob("dedup-*")
    assert new != ddir


def test_disk_dedup_killed_then_rerun(tmp_path, tokenizer_path):
    corpus = make_corpus(tmp_path)
    args = ["--input", corpus, "--tokenizer", tokenizer_path, "--dedup.mode", "disk"]
    assert run_cli(*args, "--output", tmp_path / "ref") == 0
    out = tmp_path / "out"
    p = run_subprocess(*args, "--output", out, kill_at="dedup:1")
    assert p.returncode == -9, p.stderr
    assert list((out / "work").glob("dedup-*/in/*.parquet")) and not (out / "shards").exists()
    p = run_subprocess(*args, "--output", out)
    assert p.returncode == 0, p.stderr
    assert report(out)["resumed_units"] == report(out)["units"]
    assert sha256_dir(out / "shards") == sha256_dir(tmp_path / "ref" / "shards")


def test_both_modes_verify_alike(tmp_path, tokenizer_path):
    # dedup.verify reaches both modes: for each setting they keep the same documents.
    corpus = make_corpus(tmp_path)
    with open(corpus / "e.jsonl", "w") as f:
        for i in range(6):
            words = prose(300 + i % 2, 80).split()
            words[5 + 3 * i] = "zebra"
            f.write(json.dumps({"text": " ".join(words)}) + "\n")
    args = ["--input", corpus, "--tokenizer", tokenizer_path, "--filter.min_chars", "20"]
    for verify_mode in ("signature", "none"):
        mem, disk = tmp_path / f"mem-{verify_mode}", tmp_path / f"disk-{verify_mode}"
        assert run_cli(*args, "--dedup.verify", verify_mode, "--output", mem) == 0
        assert (
            run_cli(*args, "--dedup.verify", verify_mode, "--dedup.mode", "disk", "--output", disk)
            == 0
        )
        assert sha256_dir(mem / "shards") == sha256_dir(disk / "shards")
        assert report(mem)["stages"]["dedup"]["dropped"].get("near_duplicate", 0) >= 1
