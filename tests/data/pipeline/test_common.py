"""The phases both engines share (pipeline/common.py), the builders of the
pipeline's config sections, and the validation split."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fastllm.config import apply_overrides
from fastllm.data.config import ConfigError, DedupConfig, PipelineConfig
from fastllm.data.pipeline import common
from fastllm.data.report import StageStats
from fastllm.shards import ShardSet, read_manifest, verify
from fastllm.tokenizer import Tokenizer

from .conftest import prose, report, run_cli

PIPELINE = Path(common.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_engines_share_common_and_not_each_other():
    local, ray = _imports(PIPELINE / "local.py"), _imports(PIPELINE / "ray.py")
    assert "fastllm.data.pipeline.common" in local & ray
    assert "fastllm.data.pipeline.local" not in ray
    assert "fastllm.data.pipeline.ray" not in local
    assert not any(m.startswith("fastllm.data.pipeline") for m in _imports(PIPELINE / "common.py"))


def test_no_kill_hook_in_the_package():
    root = PIPELINE.parents[1]
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "FASTLLM_PIPELINE_KILL" not in text and "SIGKILL" not in text, path


def _cfg(tmp_path, *overrides: str) -> PipelineConfig:
    # Not load(): that checks the inputs exist too.
    return PipelineConfig.from_dict(
        apply_overrides({}, ["--output.dir", str(tmp_path / "out"), *overrides])
    )


def test_builders(tmp_path, tokenizer_path):
    cfg = _cfg(tmp_path, "--filter.min_chars", "5", "--filter.c4.enabled", "false")
    assert [s.name for s in cfg.filter.build()] == [
        "length",
        "gopher_repetition",
        "gopher_quality",
        "fineweb",
    ]
    assert [s.name for s in cfg.pii.build()] == ["pii"]
    assert cfg.pii.replace(enabled=False).build() == []
    assert cfg.filter.replace(enabled=False).build() == []
    assert type(cfg.dedup.build()).__name__ == "DedupStage"
    cfg = cfg.replace(
        input=cfg.input.replace(paths=[str(tokenizer_path)]),
        tokenizer=cfg.tokenizer.replace(path=str(tokenizer_path)),
    )
    assert type(cfg.build()).__name__ == "LocalEngine"
    assert type(cfg.replace(run=cfg.run.replace(engine="ray")).build()).__name__ == "RayEngine"
    with pytest.raises(ConfigError, match="input.paths"):
        cfg.replace(input=cfg.input.replace(paths=[])).build()


def test_stage_chain_counts_every_stage(tmp_path):
    chain = common.StageChain(_cfg(tmp_path, "--filter.min_chars", "5"))
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "html": [
                f"<html><body><article><p>{prose(i, 60)}</p></article></body></html>".encode()
                for i in range(2)
            ]
            + [b"<html><body><nav>menu</nav></body></html>"],
            "source": ["s"] * 3,
        }
    )
    stats: dict[str, StageStats] = {}
    kept = chain(table, stats)
    assert kept.column("id").to_pylist() == ["a", "b"]
    assert list(stats)[:2] == ["extract", "length"] and list(stats)[-1] == "pii"
    assert stats["extract"].docs_in == 3 and stats["extract"].docs_out == 2
    assert stats["extract"].dropped == {"no_main_text": 1}
    for a, b in zip(list(stats.values()), list(stats.values())[1:], strict=False):
        assert a.docs_out == b.docs_in


def test_dedup_keep_exact_first_then_near_among_the_rest():
    h = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [4, 4]], np.uint64)
    lengths = np.array([10, 20, 10, 30, 40])
    ids = pa.chunked_array([["a", "b", "c"], ["d", "e"]])
    seen = []

    def near(idx, failures):  # 3 and 4 (positions 2 and 3 among the survivors) are near duplicates
        seen.append(idx.tolist())
        return np.array([0, 1, 2, 2])

    keep, stats = common.dedup_keep(h, lengths, DedupConfig(), near, ids)
    assert seen == [[0, 1, 3, 4]]
    assert keep.tolist() == [True, True, False, True, False]
    assert stats.dropped == {"exact_duplicate": 1, "near_duplicate": 1}
    assert (stats.docs_in, stats.docs_out, stats.bytes_in, stats.bytes_out) == (5, 3, 110, 60)
    assert stats.errors == []
    # Exact off: every document is a near-dedup candidate; all off: all kept.
    keep, _ = common.dedup_keep(
        h, lengths, DedupConfig(exact=False), lambda i, f: np.arange(len(i)), ids
    )
    assert keep.all()
    keep, stats = common.dedup_keep(h, lengths, DedupConfig(enabled=False), near, ids)
    assert keep.all() and stats.dropped == {}


def test_dedup_keep_drops_what_the_clustering_failed_on():
    h = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [4, 4]], np.uint64)
    ids = pa.chunked_array([["a", "b", "c"], ["d", "e"]])

    def near(idx, failures):  # the kernel failed on "d" (position 2): its own cluster
        failures.append((2, "injected"))
        return np.arange(len(idx))

    keep, stats = common.dedup_keep(h, np.full(5, 10), DedupConfig(), near, ids)
    assert keep.tolist() == [True, True, False, False, True]
    assert stats.dropped == {"exact_duplicate": 1, "internal_error": 1}
    assert stats.errors == ["d: internal_error in near dedup: injected"]
    assert stats.docs_out == 3


def test_dedup_stage_applies_the_pipelines_rule():
    base = " ".join(f"word{i}" for i in range(60))
    texts = [base, "something else entirely", base.upper(), base.replace("word30", "x"), "more"]
    kept, counts = DedupConfig().build()(pa.table({"text": texts}))
    assert kept.column("text").to_pylist() == [texts[0], texts[1], texts[4]]
    assert counts == {"exact_duplicate": 1, "near_duplicate": 1}


def test_val_mask_takes_every_nth():
    assert common.val_mask(0, 7, 3).tolist() == [0, 0, 1, 0, 0, 1, 0]
    assert common.val_mask(5, 3, 3).tolist() == [1, 0, 0]
    assert not common.val_mask(0, 5, 0).any()


def test_shard_sets_route_every_nth_document(tmp_path, tokenizer_path):
    tok = Tokenizer.from_file(tokenizer_path)
    cfg = _cfg(tmp_path, "--output.val_every", "3")
    out = tmp_path / "out"
    out.mkdir()
    shards = common.ShardSets(cfg, out, tok)
    texts = [prose(i, 5 + i) for i in range(10)]
    for lo, hi in ((0, 4), (4, 5), (5, 10)):  # batches of uneven size
        ids, offsets = tok.encode_to_numpy(texts[lo:hi], disallowed_special=())
        shards.add(ids, offsets, source="a" if lo < 5 else "b")
    manifests = shards.close()
    assert set(manifests) == {"shards", "val_shards"}
    assert not (out / ".shards.tmp").exists() and not (out / ".val_shards.tmp").exists()
    eos = read_manifest(out / "shards")["eos_id"]

    def docs(d):
        s = ShardSet(d)
        return [tok.decode(s.document(i)[:-1].tolist()) for i in range(s.num_documents)]

    assert docs(out / "val_shards") == [texts[2], texts[5], texts[8]]
    assert docs(out / "shards") == [t for i, t in enumerate(texts) if i % 3 != 2]
    sources = read_manifest(out / "val_shards")["sources"]
    assert {k: v["documents"] for k, v in sources.items()} == {"a": 1, "b": 2}
    assert verify(out / "shards") == [] and verify(out / "val_shards") == []
    assert shards.stats.docs_in == 10 and shards.stats.docs_out == 10
    assert eos is not None


def test_the_tokenizer_sample_leaves_out_validation_documents(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, "--output.val_every", "2", "--tokenizer.train_vocab_size", "300")
    seen = []
    real = Tokenizer.train

    def train(texts, vocab_size, **kw):
        seen.extend(texts)
        return real(texts, vocab_size, **kw)

    monkeypatch.setattr(Tokenizer, "train", staticmethod(train))
    out = tmp_path / "out"
    out.mkdir()
    cols = [pa.chunked_array([pa.array(["d0", "d1", "d2"])]), pa.array(["d3", "d4"])]
    common.tokenizer_for(cfg, out, None, lambda: iter(cols))
    assert seen == ["d0", "d2", "d4"]
    assert (out / "tokenizer.json").is_file()
    seen.clear()
    common.tokenizer_for(cfg, out, None, lambda: iter(cols))  # a rerun loads it
    assert seen == []


def test_val_split_end_to_end(corpus, tokenizer_path, tmp_path):
    args = ["--input", corpus, "--tokenizer", tokenizer_path, "--filter.min_chars", "20"]
    assert run_cli(*args, "--output", tmp_path / "all") == 0
    assert run_cli(*args, "--output", tmp_path / "split", "--output.val_every", "4") == 0
    whole = ShardSet(tmp_path / "all" / "shards")
    docs = [whole.document(i).tolist() for i in range(whole.num_documents)]
    train, val = (
        ShardSet(tmp_path / "split" / "shards"),
        ShardSet(tmp_path / "split" / "val_shards"),
    )
    assert [val.document(i).tolist() for i in range(val.num_documents)] == docs[3::4]
    assert [train.document(i).tolist() for i in range(train.num_documents)] == [
        d for i, d in enumerate(docs) if i % 4 != 3
    ]
    totals = report(tmp_path / "split")["totals"]
    assert totals["documents"] + totals["val_documents"] == len(docs)
    assert totals["val_tokens"] == sum(len(d) for d in docs[3::4])
    assert "val_documents" not in report(tmp_path / "all")["totals"]
    # Another split on a finished output is an error, not the old shards.
    assert run_cli(*args, "--output", tmp_path / "split", "--output.val_every", "5") == 2
    assert run_cli(*args, "--output", tmp_path / "split", "--output.val_every", "4") == 0
