"""Bad input never kills a run: it is counted, named and skipped."""

from __future__ import annotations

import gzip
import json

from fastllm.shards import ShardSet, read_manifest, verify

from .conftest import NO_QUALITY, prose, report, run_cli


def run(tmp_path, tokenizer_path, *inputs, extra=()):
    """The pipeline on short test texts: the quality filters are off."""
    out = tmp_path / "out"
    args = ["--output", out, "--tokenizer", tokenizer_path, *NO_QUALITY, *extra]
    for i in inputs:
        args += ["--input", i]
    assert run_cli(*args) == 0
    assert verify(out / "shards") == []
    return out, report(out)


def test_empty_inputs(tmp_path, tokenizer_path):
    (tmp_path / "e.jsonl").write_text("")
    (tmp_path / "e.txt").write_text("")
    (tmp_path / "dir").mkdir()
    out, r = run(
        tmp_path, tokenizer_path, tmp_path / "e.jsonl", tmp_path / "e.txt", tmp_path / "dir"
    )
    assert r["totals"]["documents"] == 0 and r["totals"]["shards"] == 0
    assert r["stages"]["read"]["dropped"] == {"empty": 1}
    assert read_manifest(out / "shards")["documents"] == 0


def test_source_with_no_survivors(tmp_path, tokenizer_path):
    (tmp_path / "short.jsonl").write_text(
        "".join(json.dumps({"text": "x" * i}) + "\n" for i in range(1, 6))
    )
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": prose(1, 50)}) + "\n")
    out, r = run(
        tmp_path,
        tokenizer_path,
        tmp_path / "short.jsonl",
        tmp_path / "long.jsonl",
        extra=("--filter.min_chars", "100"),
    )
    assert r["stages"]["length"]["dropped"] == {"too_short": 5}
    assert read_manifest(out / "shards")["sources"] == {
        "long": {"documents": 1, "tokens": ShardSet(out / "shards").document(0).size}
    }


def test_document_longer_than_the_shard_cap(tmp_path, tokenizer_path):
    with open(tmp_path / "a.jsonl", "w") as f:
        for i, n in enumerate([20, 2000, 20]):
            f.write(json.dumps({"text": prose(i, n)}) + "\n")
    out, r = run(
        tmp_path, tokenizer_path, tmp_path / "a.jsonl", extra=("--output.max_shard_bytes", "1000")
    )
    assert r["totals"]["documents"] == 3
    assert r["totals"]["oversized_documents"] == 1
    m = read_manifest(out / "shards")
    assert [s["oversized"] for s in m["shards"]].count(True) == 1


def test_truncated_gzip_is_skipped_and_named(tmp_path, tokenizer_path):
    data = gzip.compress(
        "".join(json.dumps({"text": prose(i, 40)}) + "\n" for i in range(200)).encode()
    )
    (tmp_path / "bad.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "good.jsonl").write_text(json.dumps({"text": prose(500, 40)}) + "\n")
    (tmp_path / "web").mkdir()
    page = gzip.compress(
        b"<html><body><article><p>" + prose(7, 60).encode() + b"</p></article></body></html>"
    )
    (tmp_path / "web" / "ok.html.gz").write_bytes(page)
    (tmp_path / "web" / "cut.html.gz").write_bytes(page[:20])
    out, r = run(
        tmp_path,
        tokenizer_path,
        tmp_path / "bad.jsonl.gz",
        tmp_path / "good.jsonl",
        tmp_path / "web",
    )
    assert len(r["skipped_units"]) == 1 and "bad.jsonl.gz" in r["skipped_units"][0]
    assert r["stages"]["read"]["dropped"] == {"unreadable": 1}
    assert any("cut.html.gz" in e for e in r["errors"])
    assert r["totals"]["documents"] == 2
    assert set(read_manifest(out / "shards")["sources"]) == {"good", "web"}


def test_invalid_utf8_and_bad_json_lines(tmp_path, tokenizer_path):
    good = json.dumps({"text": prose(1, 30)}).encode()
    bad_utf8 = b'{"text": "caf\xe9 ' + prose(2, 30).encode() + b'"}'
    (tmp_path / "a.jsonl").write_bytes(
        b"\n".join([good, bad_utf8, b"{not json", b'{"other": 1}', b""])
    )
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe" + prose(3, 30).encode())
    out, r = run(tmp_path, tokenizer_path, tmp_path / "a.jsonl", tmp_path / "b.txt")
    read = r["stages"]["read"]
    assert read["dropped"] == {"bad_json": 1, "no_text_field": 1}
    assert read["flagged"] == {"invalid_utf8_repaired": 2}
    assert r["totals"]["documents"] == 3


def test_filter_hook_counts_its_drops(tmp_path, tokenizer_path):
    with open(tmp_path / "a.jsonl", "w") as f:
        for t in [prose(1, 30), prose(2, 30) + " zebra", prose(3, 30)]:
            f.write(json.dumps({"text": t}) + "\n")
    out, r = run(
        tmp_path,
        tokenizer_path,
        tmp_path / "a.jsonl",
        extra=("--filter.stages", "tests.data.pipeline.hooks:factory"),
    )
    assert r["stages"]["no_zebra"]["dropped"] == {"mentions_zebra": 1}
    assert r["totals"]["documents"] == 2
