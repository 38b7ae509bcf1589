"""``--engine ray`` on a local Ray instance gives the local engine's documents,
and a rerun skips the units it finished."""

from __future__ import annotations

import pytest

from fastllm.shards import ShardSet, read_manifest, verify

from .conftest import report, run_cli, sha256_dir

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def documents(d):
    s = ShardSet(d)
    return [s.document(i).tolist() for i in range(s.num_documents)]


def test_ray_equals_local_and_resumes(local_ray, corpus, tokenizer_path, tmp_path):
    args = [
        "--input",
        corpus,
        "--tokenizer",
        tokenizer_path,
        "--filter.min_chars",
        "20",
        "--input.batch_size",
        "4",
    ]
    assert run_cli(*args, "--output", tmp_path / "local") == 0
    assert run_cli(*args, "--output", tmp_path / "ray", "--engine", "ray") == 0
    assert verify(tmp_path / "ray" / "shards") == []
    loc, ray_ = tmp_path / "local" / "shards", tmp_path / "ray" / "shards"
    assert documents(ray_) == documents(loc)
    assert read_manifest(ray_)["sources"] == read_manifest(loc)["sources"]
    rl, rr = report(tmp_path / "local"), report(tmp_path / "ray")
    for stage in ("read", "extract", "length", "dedup", "tokenize", "shards"):
        for k in ("docs_in", "docs_out", "dropped", "flagged"):
            assert rr["stages"][stage][k] == rl["stages"][stage][k], (stage, k)
    assert rr["engine"] == "ray"

    # Resume: the finished output is not redone; with the shards lost and one
    # unit unfinished, only that unit goes through Ray again.
    ray_out = tmp_path / "ray"
    first = sha256_dir(ray_)
    assert run_cli(*args, "--output", ray_out, "--engine", "ray") == 0
    assert sha256_dir(ray_) == first
    markers = sorted((ray_out / "work").glob("*-ray.json"))
    assert len(markers) == rr["units"] == 5
    markers[2].unlink()
    (ray_out / "report.json").unlink()
    assert run_cli(*args, "--output", ray_out, "--engine", "ray") == 0
    again = report(ray_out)
    assert again["resumed_units"] == 4
    assert sha256_dir(ray_) == first
    assert list(again["stages"]) == list(rr["stages"])
    for stage, st in rr["stages"].items():
        for k in ("docs_in", "docs_out", "dropped", "flagged"):
            assert again["stages"][stage][k] == st[k], (stage, k)
    assert run_cli(*args, "--output", ray_out, "--engine", "ray", "--dedup.threshold", "0.5") == 2


def test_ray_reads_warc_like_local(local_ray, shared_data, tmp_path):
    # WARC pages carry their URL through Ray's blocks to the extractor, as locally.
    from tests.io.warc_files import html_dev_pages, join, warc_records

    cc = tmp_path / "cc"
    cc.mkdir()
    pages = html_dev_pages(shared_data / "html-dev", limit=12)
    (cc / "CC-MAIN-a.warc.gz").write_bytes(join(warc_records(pages), gzip_per_record=True))
    tok = shared_data / "tokenizers" / "gpt2" / "tokenizer.json"
    args = ["--input", cc, "--tokenizer", tok, "--filter.min_chars", "100"]
    assert run_cli(*args, "--output", tmp_path / "local") == 0
    assert run_cli(*args, "--output", tmp_path / "ray", "--engine", "ray") == 0
    assert documents(tmp_path / "ray" / "shards") == documents(tmp_path / "local" / "shards")
    assert len(documents(tmp_path / "local" / "shards")) >= 5


def test_ray_blocks_keep_the_url():
    import pyarrow as pa

    from fastllm.data.pipeline.ray import _as_block

    t = pa.table({"id": ["a", "b"], "html": [b"<p>x</p>", b"<p>y</p>"], "source": ["s", "s"],
                  "url": ["http://example.de/", None]})  # fmt: skip
    block = _as_block(t, 3)
    assert block.column("url").to_pylist() == ["http://example.de/", None]
    assert block.column("text").null_count == 2
    assert block.column("_unit").to_pylist() == [3, 3]


def test_ray_splits_validation_like_local(local_ray, corpus, tmp_path):
    # The split and the tokenizer trained in the run (without the validation
    # documents) are common.py's in both engines.
    args = ["--input", corpus, "--filter.min_chars", "20", "--output.val_every", "3"]
    args += ["--tokenizer.train_vocab_size", "300"]
    assert run_cli(*args, "--output", tmp_path / "local") == 0
    assert run_cli(*args, "--output", tmp_path / "ray", "--engine", "ray") == 0
    for name in ("shards", "val_shards"):
        assert documents(tmp_path / "ray" / name) == documents(tmp_path / "local" / name)
    local_tok = (tmp_path / "local" / "tokenizer.json").read_bytes()
    assert (tmp_path / "ray" / "tokenizer.json").read_bytes() == local_tok
    assert len(documents(tmp_path / "local" / "val_shards")) >= 5
