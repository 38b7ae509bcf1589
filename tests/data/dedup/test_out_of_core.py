"""Out-of-core dedup over shards equals the in-memory result, and resumes."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastllm.data import dedup
from fastllm.data.config import DedupConfig
from fastllm.data.dedup import disk as dedup_ooc

P64 = DedupConfig(num_perm=64)


def _corpus(n_bases=60, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"v{i}" for i in range(300)]
    texts = []
    for _ in range(n_bases):
        words = list(rng.choice(vocab, size=int(rng.integers(0, 80))))
        texts.append(" ".join(words))
        for _ in range(int(rng.integers(0, 3))):
            w = list(words)
            for _ in range(int(rng.integers(0, 4))):
                if w:
                    w[int(rng.integers(0, len(w)))] = "edited"
            texts.append(" ".join(w))
    order = rng.permutation(len(texts))
    return [texts[i] for i in order] + ["", "one", "one", "我爱北京天安门广场"]


def _write_shards(tmp_path, texts, k=4):
    paths = []
    parts = np.array_split(np.arange(len(texts)), k)
    for i, idx in enumerate(parts):
        rows = [{"id": int(j), "text": texts[j]} for j in idx]
        if i % 2 == 0:
            p = tmp_path / f"part-{i}.parquet"
            pq.write_table(pa.Table.from_pylist(rows), p)
        else:
            p = tmp_path / f"part-{i}.jsonl.gz"
            with gzip.open(p, "wt", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        paths.append(p)
    return paths


def _kept_ids(out_dir, paths):
    ids = []
    for p in paths:
        q = out_dir / p.name
        if p.name.endswith(".parquet"):
            ids += pq.read_table(q).column("id").to_pylist()
        else:
            with gzip.open(q, "rt", encoding="utf-8") as f:
                ids += [json.loads(line)["id"] for line in f]
    return ids


@pytest.mark.parametrize("verify", ["exact", "signature", "none"])
def test_out_of_core_equals_in_memory(tmp_path, verify):
    texts = _corpus()
    paths = _write_shards(tmp_path, texts)
    cfg = DedupConfig(num_perm=64, ngram=3, verify=verify)
    want = dedup.near_duplicate_clusters(texts, cfg)
    assert (want != np.arange(len(texts))).sum() > 10, "the corpus must have duplicates"
    report = dedup_ooc.dedup_shards(paths, tmp_path / "work", tmp_path / "out", cfg, batch_size=7)
    got = dedup_ooc.read_labels(tmp_path / "work")
    assert got.tolist() == want.tolist()
    assert report == dedup.report_from_labels(want)
    kept = sorted(_kept_ids(tmp_path / "out", paths))
    assert kept == np.flatnonzero(want == np.arange(len(texts))).tolist()
    assert json.loads((tmp_path / "work" / "report.json").read_text()) == report.as_dict()
    assert not list((tmp_path / "work").rglob(".*.tmp")), "temporary files left behind"
    sets = sorted(p.name for p in (tmp_path / "work" / "sets").iterdir())
    assert sets == (
        ["00000.npz", "00001.npz", "00002.npz", "00003.npz"] if verify == "exact" else []
    )


def test_resume_after_a_crash_skips_finished_shards(tmp_path, monkeypatch):
    texts = _corpus(seed=1)
    paths = _write_shards(tmp_path, texts)
    real = dedup_ooc._signatures_for_shard
    calls = []

    def crash_on_third(path, *args):
        calls.append(path.name)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(path, *args)

    monkeypatch.setattr(dedup_ooc, "_signatures_for_shard", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        dedup_ooc.dedup_shards(paths, tmp_path / "work", tmp_path / "out", P64)
    assert sorted(p.name for p in (tmp_path / "work" / "shards").iterdir()) == [
        "00000.json",
        "00001.json",
    ]
    assert not (tmp_path / "work" / "labels.npy").exists()

    calls.clear()
    monkeypatch.setattr(
        dedup_ooc,
        "_signatures_for_shard",
        lambda path, *a: (calls.append(path.name), real(path, *a))[1],
    )
    dedup_ooc.dedup_shards(paths, tmp_path / "work", tmp_path / "out", P64)
    assert calls == [paths[2].name, paths[3].name]
    want = dedup.near_duplicate_clusters(texts, P64)
    assert dedup_ooc.read_labels(tmp_path / "work").tolist() == want.tolist()

    # A finished run reruns without touching a shard.
    calls.clear()
    dedup_ooc.dedup_shards(paths, tmp_path / "work", tmp_path / "out", P64)
    assert calls == []


def test_other_settings_in_the_same_work_dir_are_refused(tmp_path):
    paths = _write_shards(tmp_path, _corpus(n_bases=5), k=2)
    dedup_ooc.dedup_shards(paths, tmp_path / "work", config=DedupConfig(num_perm=32))
    with pytest.raises(ValueError, match="num_perm"):
        dedup_ooc.dedup_shards(paths, tmp_path / "work", config=P64)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="neither .parquet nor .jsonl"):
        dedup_ooc.dedup_shards([tmp_path / "x.csv"], tmp_path / "w")
    with pytest.raises(FileNotFoundError, match="no such file"):
        dedup_ooc.dedup_shards([tmp_path / "missing.parquet"], tmp_path / "w")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        dedup_ooc.dedup_shards([bad], tmp_path / "w2")
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["a"]}), p)
    with pytest.raises(ValueError, match="no column 'text'"):
        dedup_ooc.dedup_shards([p], tmp_path / "w3")
