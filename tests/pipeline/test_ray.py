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
