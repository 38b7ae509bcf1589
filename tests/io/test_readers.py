"""The one file reader: its three views (pipeline units, texts, row batches)
see the same documents in every format, and each treats bad input as it says."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastllm.io.readers import (
    UnitError,
    iter_texts,
    kind_of,
    list_units,
    open_binary,
    read_unit,
    text_batches,
)
from tests.io.warc_files import Page, join, warc_records, wet_records

DOCS = ["first doc", "zweites Dokument ü", "third\nwith a newline"]


def _unit_texts(path, field="text"):
    (unit,) = list_units([str(path)], 256)
    stats: Counter = Counter()
    out = []
    for t in read_unit(unit, 2, field, stats, []):
        col = t.column("text" if "text" in t.column_names else "html")
        out += [v.decode() if isinstance(v, bytes) else v for v in col.to_pylist()]
    return out, stats


def _jsonl(path, rows, gz=False):
    data = "".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize(
    "name", ["a.jsonl", "a.jsonl.gz", "a.parquet", "a.txt", "a.html", "a.warc.gz", "a.warc.wet.gz"]
)
def test_the_views_see_the_same_documents(tmp_path, name):
    p = tmp_path / name
    want = DOCS
    if name.startswith("a.jsonl"):
        _jsonl(p, [{"text": t} for t in DOCS], gz=name.endswith(".gz"))
    elif name == "a.parquet":
        pq.write_table(pa.table({"text": DOCS}), p, row_group_size=2)
    elif name == "a.txt":
        p.write_text(DOCS[0])
        want = DOCS[:1]
    elif name == "a.html":
        p.write_text("<p>x</p>")
        want = ["<p>x</p>"]
    elif name == "a.warc.gz":
        pages = [
            Page(f"http://e.org/{i}", f"<html><p>{t}</p></html>".encode())
            for i, t in enumerate(DOCS)
        ]
        p.write_bytes(join(warc_records(pages), gzip_per_record=True))
        want = [f"<html><p>{t}</p></html>" for t in DOCS]
    else:
        p.write_bytes(
            join(wet_records([(f"http://e.org/{i}", t) for i, t in enumerate(DOCS)]), True)
        )
    assert list(iter_texts(p)) == want
    units, _ = _unit_texts(p)
    assert units == want
    if kind_of(p) in ("jsonl", "parquet", "text"):
        rows = [
            v
            for b in text_batches(p, batch_size=2)
            for v in (b if isinstance(b, list) else b.to_pylist())
        ]
        assert rows == want


def test_problem_lines_per_view(tmp_path):
    p = _jsonl(
        tmp_path / "p.jsonl",
        [{"text": "ok"}, "not json", {"other": 1}, {"text": ""}, "[1]", "", {"text": "last"}],
    )
    # The pipeline counts and skips every problem.
    docs, stats = _unit_texts(p)
    assert docs == ["ok", "last"]
    assert stats["drop:bad_json"] == 1 and stats["drop:no_text_field"] == 2
    assert stats["drop:empty"] == 1 and stats["docs"] == 6  # the blank line is not a document
    # iter_texts names the first line that is not JSON.
    with pytest.raises(ValueError, match=r"p.jsonl:2: not valid JSON"):
        list(iter_texts(p))
    # text_batches keeps one row per non-blank line ("" where there is no text)...
    good = _jsonl(
        tmp_path / "g.jsonl", [{"text": "ok"}, {"other": 1}, "", {"text": 3}, {"text": "x"}]
    )
    assert [r for b in text_batches(good, batch_size=2) for r in b] == ["ok", "", "", "x"]
    # ...and refuses a line that is not a JSON object: row numbers would shift.
    with pytest.raises(ValueError, match=r"p.jsonl:2: not a JSON object"):
        list(text_batches(p))


def test_missing_column_and_missing_file(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["a"]}), p)
    with pytest.raises(UnitError, match="no column 'text'"):
        list(text_batches(p))
    with pytest.raises(ValueError, match="no column 'text'"):
        list(iter_texts(p))
    assert list(iter_texts(p, field="body")) == ["a"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        list(iter_texts(tmp_path / "nope.jsonl"))


def test_invalid_utf8_is_repaired(tmp_path):
    p = tmp_path / "b.txt"
    p.write_bytes(b"ok \xff end")
    assert list(iter_texts(p)) == ["ok \ufffd end"]
    docs, stats = _unit_texts(p)
    assert docs == ["ok \ufffd end"] and stats["flag:invalid_utf8_repaired"] == 1


def test_open_binary_decompresses(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"abc"))
    with open_binary(tmp_path / "x.gz") as f:
        assert f.read() == b"abc"
    assert kind_of("a.JSONL.gz") == "jsonl" and kind_of("CC.warc.wet.gz") == "wet"
    assert kind_of("x.html.gz") == "html" and kind_of("README") == "text"
