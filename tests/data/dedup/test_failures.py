"""The dedup functions under the one panic policy: a document a kernel fails
on (a real panic in Rust, injected by tests/panics.py) is a RuntimeError
naming it, or, with ``failures=``, a blank row that takes part in no
cluster and is handed to the caller."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastllm.data import dedup
from fastllm.data.config import DedupConfig
from fastllm.data.dedup import disk
from tests import panics

BASE = " ".join(f"w{i}" for i in range(80))
NEAR = BASE.replace("w79", "changed")  # Jaccard 75 / 77


def test_hashes_and_signatures_raise_or_hand_failures_over(monkeypatch):
    panics.patch(monkeypatch.setattr, "content_hashes", "minhash")
    texts = ["one", f"two {panics.HASH} {panics.SIG}", "three"]
    with pytest.raises(RuntimeError, match=r"content_hashes: internal error .*row 1: injected"):
        dedup.content_hashes(texts)
    with pytest.raises(RuntimeError, match=r"minhash: internal error .*row 1: injected"):
        dedup.minhash(pa.array(texts))
    failed: list = []
    h = dedup.content_hashes(texts, failures=failed)
    assert [k for k, _ in failed] == [1] and "injected panic" in failed[0][1]
    assert h[1].tolist() == [0, 0]
    assert h[0].tolist() == dedup.content_hashes(["one"])[0].tolist()
    failed = []
    sigs = dedup.minhash(texts, 16, failures=failed)
    assert [k for k, _ in failed] == [1] and not sigs[1].any()
    assert (sigs[2] == dedup.minhash(["three"], 16)[0]).all()


def test_a_failed_verification_joins_nothing(monkeypatch):
    # BASE and NEAR are near duplicates; the marked copy of BASE fails its
    # exact verification, so it is its own cluster and NEAR stays with BASE.
    panics.patch(monkeypatch.setattr, "shingle_jaccard")
    texts = [BASE, f"{BASE} {panics.JAC}", NEAR, "other words entirely here"]
    sigs = dedup.minhash(texts)
    with pytest.raises(RuntimeError, match="clusters_from_edges: .*row 1"):
        dedup.clusters_from_signatures(sigs, texts=texts)
    failed: list = []
    labels = dedup.clusters_from_signatures(sigs, texts=texts, failures=failed)
    assert labels.tolist() == [0, 1, 0, 3]
    assert [k for k, _ in failed] == [1]
    # Through rows_of_texts the failures are document numbers, not text rows.
    failed = []
    col = pa.array(["padding", *texts])
    labels = dedup.clusters_from_signatures(
        sigs, texts=col, rows_of_texts=np.arange(1, 5), failures=failed
    )
    assert labels.tolist() == [0, 1, 0, 3] and [k for k, _ in failed] == [1]


def test_the_dedup_stage_drops_them_as_internal_errors(monkeypatch):
    table = pa.table(
        {"id": ["a", "b", "c", "d"], "text": [BASE, f"x {panics.HASH}", NEAR, BASE.upper()]}
    )
    stage = DedupConfig().build()
    kept, counts = stage(table)  # nothing fails: the two-item contract
    assert kept.column("id").to_pylist() == ["a", "b"]
    assert counts == {"exact_duplicate": 1, "near_duplicate": 1}
    panics.patch(monkeypatch.setattr, "content_hashes")
    kept, counts, errors = stage(table)
    assert kept.column("id").to_pylist() == ["a"]
    assert counts == {"exact_duplicate": 1, "near_duplicate": 1, "internal_error": 1}
    assert len(errors) == 1 and errors[0].startswith("b: internal_error in content_hashes: ")


def _shards(tmp_path, texts):
    paths = []
    for i, part in enumerate((texts[:3], texts[3:])):
        p = tmp_path / f"s{i}.parquet"
        pq.write_table(pa.table({"text": part}), p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_out_of_core_leaves_them_out_and_remembers(monkeypatch, tmp_path, verify):
    panics.patch(monkeypatch.setattr, "minhash", "shingle_sets")
    texts = [BASE, f"{BASE} {panics.SIG}", "lone words here", NEAR, f"{NEAR} {panics.JAC}"]
    paths = _shards(tmp_path, texts)
    cfg = DedupConfig(verify=verify)
    with pytest.raises(RuntimeError, match="dedup_shards: internal error"):
        disk.dedup_shards(paths, tmp_path / "w0", config=cfg)
    failed: list = []
    report = disk.dedup_shards(paths, tmp_path / "w", tmp_path / "out", cfg, failures=failed)
    # A failed signature is in no bucket; a failed shingle set in no edge
    # (signature verification does not shingle, so NEAR's copy is a duplicate).
    want = [1, 4] if verify == "exact" else [1]
    assert [k for k, _ in failed] == want
    assert all("injected panic" in m for _, m in failed)
    labels = disk.read_labels(tmp_path / "w")
    assert labels.tolist() == ([0, 1, 2, 0, 4] if verify == "exact" else [0, 1, 2, 0, 0])
    out = [t for p in paths for t in pq.read_table(tmp_path / "out" / p.name)["text"].to_pylist()]
    assert out == [BASE, "lone words here"]
    assert (report.kept, report.removed) == (2, 3)
    saved = json.loads((tmp_path / "w" / "failures.json").read_text())
    assert [k for k, _ in saved] == want
    # A rerun resumes from what is on disk, failures included.
    again: list = []
    disk.dedup_shards(paths, tmp_path / "w", tmp_path / "out", cfg, failures=again)
    assert again == failed
