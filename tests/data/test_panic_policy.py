"""The one panic policy of the Rust kernels (``rust/src/guard.rs``), seen
from Python: a panic on one document drops that document as
``internal_error``, names it by id, and never lets it through unprocessed.

The panics are real: ``_core._panic_for_test`` runs the kernels' own guard
and Arrow output with a kernel that panics on a marker. The tests put it in
place of a real kernel with monkeypatch; nothing in the package calls it.
"""

from __future__ import annotations

import json

import pyarrow as pa

from fastllm import _core
from fastllm.data.config import PiiSection
from fastllm.data.stages import Extract, Pii
from fastllm.shards import ShardSet
from fastllm.tokenizer import Tokenizer

from .pipeline.conftest import prose, report, run_cli, tokenizer_path  # noqa: F401

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
