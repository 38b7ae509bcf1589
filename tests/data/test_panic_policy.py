"""The one panic policy of the Rust kernels (``rust/src/guard.rs``), seen
from Python: a panic on one document drops that document as
``internal_error``, names it by id, and never lets it through unprocessed.

The panics are real: ``_core._panic_for_test`` runs the kernels' own guard
and Arrow output with a kernel that panics on a marker. The tests put it in
place of a real kernel with monkeypatch; nothing in the package calls it.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from fastllm import _core
from fastllm.data.config import PiiSection
from fastllm.data.report import format_table
from fastllm.data.stages import Extract, Pii
from fastllm.shards import ShardSet
from fastllm.tokenizer import Tokenizer
from tests import panics

from .pipeline.conftest import REPO, prose, report, run_cli, tokenizer_path  # noqa: F401

MARKER = "qqpanicqq"  # survives extraction (a NUL would not)
SECRET = "jane.doe@example.com"


def test_a_real_panic_crosses_as_a_failed_row():
    out, failed = _core._panic_for_test(pa.array(["a", f"b {MARKER}", None, "c"]), MARKER)
    assert pa.array(out).to_pylist() == ["a", None, None, "c"]
    assert [k for k, _ in failed] == [1]
    assert "injected panic" in failed[0][1]


def _panicking(texts, **_placeholders):
    # A masker with a bug on one document: the others come back as they were
    # (they hold no PII here), the marked one panics inside Rust.
    return _core._panic_for_test(texts, MARKER)


def test_pii_stage_fails_closed(monkeypatch):
    monkeypatch.setattr(_core, "mask_pii", _panicking)
    table = pa.table({"id": ["a", "b", "c"], "text": ["one", f"mail {SECRET} {MARKER}", "two"]})
    kept, counts, errors = Pii(PiiSection())(table)
    assert kept.column("text").to_pylist() == ["one", "two"]
    assert counts == {"internal_error": 1}
    assert len(errors) == 1 and errors[0].startswith("b: internal_error in pii: ")


def test_pipeline_never_writes_the_unmasked_text(monkeypatch, tmp_path, tokenizer_path):  # noqa: F811
    monkeypatch.setattr(_core, "mask_pii", _panicking)
    docs = {f"doc-{i}": prose(i, 70) for i in range(4)}
    docs["leaky"] = prose(9, 70) + f" {MARKER} Write to {SECRET} today."
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()))
    out = tmp_path / "out"
    args = ["--input", src, "--output", out, "--tokenizer", tokenizer_path, "--no-dedup"]
    assert run_cli(*args) == 0
    tok = Tokenizer.from_file(tokenizer_path)
    s = ShardSet(out / "shards")
    texts = [tok.decode(s.document(i)[:-1].tolist()) for i in range(s.num_documents)]
    assert len(texts) == 4
    assert not any(SECRET in t or "jane.doe" in t for t in texts)
    for p in out.rglob("*"):  # nor anywhere else the run wrote
        if p.is_file():
            assert b"jane.doe" not in p.read_bytes(), p
    pii = report(out)["stages"]["pii"]
    assert pii["dropped"] == {"internal_error": 1}
    # The pipeline's id of a JSONL document is file:line.
    assert pii["errors"] == [
        'in.jsonl:5: internal_error in pii: injected panic for a test (marker "qqpanicqq")'
    ]


def test_extract_tells_an_internal_error_from_no_main_text(monkeypatch):
    real = _core.extract_arrow

    def extract(pages, urls=None):
        texts, titles, langs, _ = real(pages, urls)
        texts, failed = _core._panic_for_test(pa.array(texts), MARKER)
        return texts, titles, langs, failed

    monkeypatch.setattr(_core, "extract_arrow", extract)
    html = [
        f"<html><body><article><p>{prose(1, 60)}</p></article></body></html>",
        "<html><body><nav>only a menu</nav></body></html>",
        f"<html><body><article><p>{prose(2, 60)} {MARKER}</p></article></body></html>",
    ]
    table = pa.table({"id": ["good", "menu", "bug"], "html": pa.array(html, pa.binary())})
    kept, counts, errors = Extract()(table)
    assert kept.column("id").to_pylist() == ["good"]
    assert counts == {"no_main_text": 1, "internal_error": 1}
    assert len(errors) == 1 and errors[0].startswith("bug: internal_error in extract: ")


# ---- dedup and tokenize: the kernels that follow the pipeline's stage chain ----
def _marked_corpus(path):
    """One document per kernel that panics on it, two that are near
    duplicates (the first marked for exact verification), and two plain."""
    near = prose(5, 120)
    docs = [
        prose(1, 70),
        f"{prose(2, 70)} {panics.HASH} end of it.",
        f"{prose(3, 70)} {panics.SIG} end of it.",
        f"{near} {panics.JAC} end of it.",  # its verification fails: not a duplicate
        near,  # so this one, which would be its near duplicate, is kept
        f"{prose(6, 70)} {panics.TOK} end of it.",
        prose(7, 70),
    ]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    return docs


def _shard_texts(out, tokenizer_path):  # noqa: F811
    tok = Tokenizer.from_file(tokenizer_path)
    s = ShardSet(out / "shards")
    return [tok.decode(s.document(i)[:-1].tolist()) for i in range(s.num_documents)]


def _errors(r, stage):
    return [e.split(": injected panic")[0] for e in r["stages"][stage]["errors"]]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_dedup_and_tokenize_drop_what_their_kernels_fail_on(
    monkeypatch,
    tmp_path,
    tokenizer_path,  # noqa: F811
    mode,
):
    panics.patch(monkeypatch.setattr, *panics.KERNELS, tokenizer=True)
    docs = _marked_corpus(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    args = ["--input", tmp_path / "in.jsonl", "--output", out, "--tokenizer", tokenizer_path]
    assert run_cli(*args, "--dedup.mode", mode) == 0
    assert _shard_texts(out, tokenizer_path) == [docs[0], docs[4], docs[6]]
    r = report(out)
    # Each where it happened, by id (a JSONL document's id is file:line).
    assert r["stages"]["signatures"]["dropped"] == {"internal_error": 2}
    assert _errors(r, "signatures") == [
        "in.jsonl:2: internal_error in content_hashes",
        "in.jsonl:3: internal_error in minhash",
    ]
    assert r["stages"]["dedup"]["dropped"] == {"internal_error": 1}
    assert _errors(r, "dedup") == ["in.jsonl:4: internal_error in near dedup"]
    assert r["stages"]["tokenize"]["dropped"] == {"internal_error": 1}
    assert _errors(r, "tokenize") == ["in.jsonl:6: internal_error in tokenizer"]
    for name, (n_in, n_out) in {
        "signatures": (7, 5),
        "dedup": (5, 4),
        "tokenize": (4, 3),
        "shards": (3, 3),
    }.items():
        s = r["stages"][name]
        assert (s["docs_in"], s["docs_out"]) == (n_in, n_out), name
    assert r["totals"]["documents"] == 3
    assert "4 documents dropped with internal errors" in format_table(r)


def test_without_the_failure_the_pair_is_one_cluster(tmp_path, tokenizer_path):  # noqa: F811
    # The control of the test above: nothing panics, the marked near
    # duplicate comes first and the plain one is dropped as its duplicate.
    docs = _marked_corpus(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    args = ["--input", tmp_path / "in.jsonl", "--output", out, "--tokenizer", tokenizer_path]
    assert run_cli(*args) == 0
    assert _shard_texts(out, tokenizer_path) == [d for k, d in enumerate(docs) if k != 4]
    assert report(out)["stages"]["dedup"]["dropped"] == {"near_duplicate": 1}


@pytest.fixture
def ray_with_panics():
    """A local Ray whose workers run the kernels' stand-ins (tests/panics.py)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join([str(REPO), str(REPO / "python"), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "worker_process_setup_hook": "tests.panics.install",
            "env_vars": {"PYTHONPATH": path},
        },
    )
    yield
    ray.shutdown()


def test_the_ray_engine_drops_them_alike(
    ray_with_panics,
    monkeypatch,
    tmp_path,
    tokenizer_path,  # noqa: F811
):
    # The workers hash, sign and tokenize; exact verification is the driver's.
    panics.patch(monkeypatch.setattr, "shingle_jaccard")
    docs = _marked_corpus(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    args = ["--input", tmp_path / "in.jsonl", "--output", out, "--tokenizer", tokenizer_path]
    assert run_cli(*args, "--engine", "ray") == 0
    assert _shard_texts(out, tokenizer_path) == [docs[0], docs[4], docs[6]]
    r = report(out)
    assert r["stages"]["signatures"]["dropped"] == {"internal_error": 1}
    assert _errors(r, "signatures") == ["in.jsonl:2: internal_error in content_hashes"]
    # MinHash runs in the dedup phase here (on the workers, through Ray's shuffle).
    assert r["stages"]["dedup"]["dropped"] == {"internal_error": 2}
    assert _errors(r, "dedup") == [
        "in.jsonl:3: internal_error in near dedup",
        "in.jsonl:4: internal_error in near dedup",
    ]
    assert r["stages"]["tokenize"]["dropped"] == {"internal_error": 1}
    assert _errors(r, "tokenize") == ["in.jsonl:6: internal_error in tokenizer"]
    assert (r["stages"]["tokenize"]["docs_in"], r["stages"]["tokenize"]["docs_out"]) == (4, 3)
