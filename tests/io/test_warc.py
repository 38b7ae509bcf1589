"""WARC/WET reading (fastllm._core.WarcReader through fastllm.io.readers):
FastWARC as the reference on files built from the html-dev pages, and every
kind of damage costing only the records it touches."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from fastllm import _core
from fastllm.io.readers import UnitError, list_units, read_unit
from tests.io.warc_files import (
    Page,
    capture,
    conversion,
    html_dev_pages,
    html_dev_texts,
    join,
    record,
    record_id,
    warc_records,
    warcinfo,
    wet_records,
)

fastwarc = pytest.importorskip("fastwarc.warc")

HTML_TYPES = ("text/html", "application/xhtml+xml")


def fastwarc_docs(path: Path, wet: bool) -> list[tuple[str, str, bytes]]:
    """(id, url, payload) as a FastWARC user picks documents: response
    records with HTML payloads (WARC-Identified-Payload-Type, else the HTTP
    Content-Type), or conversion records."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    kind = WarcRecordType.conversion if wet else WarcRecordType.response
    out = []
    with open(path, "rb") as f:
        for r in ArchiveIterator(f, record_types=kind, parse_http=not wet):
            body = r.reader.read()
            if not wet:
                declared = r.headers.get("WARC-Identified-Payload-Type") or (
                    r.http_headers.get("Content-Type") if r.http_headers else None
                )
                media = (declared or "").split(";")[0].strip().lower()
                if media and media not in HTML_TYPES:
                    continue
            if not body.strip():
                continue
            out.append((r.record_id, r.headers.get("WARC-Target-URI") or "", body))
    return out


def ours(
    path: Path, wet: bool = False, batch: int = 7
) -> tuple[list[tuple[str, str, bytes]], dict]:
    r = _core.WarcReader(str(path), wet=wet)
    out = []
    while (b := r.read_batch(batch)) is not None:
        ids, urls, data, offsets = b
        for i, (rid, url) in enumerate(zip(ids, urls, strict=True)):
            out.append((rid, url, data[offsets[i] : offsets[i + 1]].tobytes()))
    return out, r.counts()


@pytest.fixture(scope="module")
def dev_pages(shared_data) -> list[Page]:
    return html_dev_pages(shared_data / "html-dev")


def non_html(pages: list[Page]) -> int:
    return sum((p.payload_type or p.content_type).split(";")[0] not in HTML_TYPES for p in pages)


@pytest.fixture(scope="module")
def dev_files(shared_data, dev_pages, tmp_path_factory) -> dict[str, Path]:
    root = shared_data / "html-dev"
    d = tmp_path_factory.mktemp("warc")
    pages = dev_pages
    texts = html_dev_texts(root)
    files = {
        "warc.gz": join(warc_records(pages), gzip_per_record=True),
        "warc": join(warc_records(pages), gzip_per_record=False),
        "warc.wet.gz": join(wet_records(texts), gzip_per_record=True),
        "wet": join(wet_records(texts), gzip_per_record=False),
    }
    paths = {}
    for ext, data in files.items():
        paths[ext] = d / f"CC-MAIN-test.{ext}"
        paths[ext].write_bytes(data)
    return paths


@pytest.mark.parametrize("ext", ["warc.gz", "warc", "warc.wet.gz", "wet"])
def test_same_documents_as_fastwarc(dev_files, dev_pages, ext):
    wet = "wet" in ext
    path = dev_files[ext]
    got, counts = ours(path, wet)
    want = fastwarc_docs(path, wet)
    assert len(want) > 300
    assert [d[0] for d in got] == [d[0] for d in want]
    assert [d[1] for d in got] == [d[1] for d in want]
    assert all(a[2] == b[2] for a, b in zip(got, want, strict=True))
    assert counts["docs"] == len(want)
    assert counts["garbage_bytes"] == counts["gzip_errors"] == 0
    if wet:
        assert counts["dropped"] == {}
        assert dict(counts["other_types"]) == {"warcinfo": 1}
    else:
        n, skip = len(want), non_html(dev_pages)
        assert skip > 10
        assert counts["dropped"] == {"non_html": skip}
        assert dict(counts["other_types"]) == {
            "warcinfo": 1,
            "request": n + skip,
            "metadata": n + skip,
        }


def test_read_unit_tables(dev_files, dev_pages):
    units = list_units([str(dev_files["warc.gz"].parent)], 100)
    kinds = {u.files[0].name.split(".", 1)[1]: u.kind for u in units}
    assert kinds == {"warc.gz": "warc", "warc": "warc", "warc.wet.gz": "wet", "wet": "wet"}
    for u in units:
        stats: Counter = Counter()
        errors: list[str] = []
        tables = list(read_unit(u, 64, "text", stats, errors))
        col = "text" if u.kind == "wet" else "html"
        assert all(t.column_names == ["id", col, "source", "url"] for t in tables)
        assert all(len(t) <= 64 for t in tables)
        t = pa.concat_tables(tables)
        assert t.schema.field(col).type == (pa.string() if u.kind == "wet" else pa.binary())
        assert set(t.column("source").to_pylist()) == {"CC-MAIN-test"}
        assert stats["docs"] - len(t) == sum(v for k, v in stats.items() if k.startswith("drop:"))
        assert stats["bytes"] == u.files[0].stat().st_size
        assert errors == []
        if u.kind == "warc":
            skip = non_html(dev_pages)
            assert stats["drop:non_html"] == skip
            assert stats["flag:warc_request"] == stats["flag:warc_metadata"] == len(t) + skip
        ref = fastwarc_docs(u.files[0], u.kind == "wet")
        assert t.column("id").to_pylist() == [d[0] for d in ref]


# ---- damage -------------------------------------------------------------

PAGES = [
    Page(f"https://site{i}.example/a", f"<html><p>page {i}</p></html>".encode()) for i in range(6)
]
IDS = [record_id(f"response-{i}-{p.url}") for i, p in enumerate(PAGES)]


def captures() -> list[list[bytes]]:
    return [capture(i, p) for i, p in enumerate(PAGES)]


def read_bytes(tmp_path: Path, data: bytes, wet: bool = False):
    p = tmp_path / ("x.wet" if wet else "x.warc")
    p.write_bytes(data)
    got, counts = ours(p, wet)
    return [g[0] for g in got], counts


def lost(counts: dict) -> int:
    return sum(counts["dropped"].values())


def test_truncated_gzip_keeps_the_members_before(tmp_path):
    recs = [warcinfo()] + [r for c in captures() for r in c]
    members = [gzip.compress(r) for r in recs]
    # Cut inside the 4th response's member (index 1 + 3*3 + 1).
    k = 1 + 3 * 3 + 1
    data = b"".join(members[:k]) + members[k][: len(members[k]) // 2]
    ids, counts = read_bytes(tmp_path, data)
    assert ids == IDS[:3]
    assert counts["dropped"] == {"truncated_gzip": 1}
    assert counts["gzip_errors"] == 1


def test_corrupt_gzip_member_costs_one_record(tmp_path):
    recs = [warcinfo()] + [r for c in captures() for r in c]
    members = [gzip.compress(r) for r in recs]
    k = 1 + 3 * 2 + 1  # the 3rd response
    bad = bytearray(members[k])
    bad[-8] ^= 0xFF  # its CRC32
    members[k] = bytes(bad)
    ids, counts = read_bytes(tmp_path, b"".join(members))
    assert ids == IDS[:2] + IDS[3:]
    assert counts["dropped"] == {"corrupt_gzip": 1}


def test_truncated_record_keeps_the_records_before(tmp_path):
    recs = [warcinfo()] + [r for c in captures() for r in c]
    data = b"".join(recs)
    cut = len(b"".join(recs[:11])) + 200  # inside the 4th response
    ids, counts = read_bytes(tmp_path, data[:cut])
    assert ids == IDS[:3]
    assert counts["dropped"] == {"truncated_record": 1}


@pytest.mark.parametrize("gz", [False, True])
def test_garbage_between_records(tmp_path, gz):
    recs = [warcinfo()] + [r for c in captures() for r in c]
    recs.insert(5, b"this is not a record\r\n\x00\x01\x02 nor is this\r\n\r\n")
    data = join(recs, gz)
    if gz:
        data = b"leading junk" + data + b"trailing junk"
    ids, counts = read_bytes(tmp_path, data)
    assert ids == IDS
    assert lost(counts) == 0
    assert counts["garbage_bytes"] > 0


@pytest.mark.parametrize("delta", [-7, -1, 1, 3, 100, 10**6, 10**20])
@pytest.mark.parametrize("gz", [False, True])
def test_bad_content_length_costs_only_that_record(tmp_path, delta, gz):
    caps = captures()
    resp = caps[2][1]
    head, _, rest = resp.partition(b"\r\nContent-Length: ")
    n, _, tail = rest.partition(b"\r\n")
    caps[2][1] = head + b"\r\nContent-Length: " + str(int(n) + delta).encode() + b"\r\n" + tail
    ids, counts = read_bytes(tmp_path, join([warcinfo()] + [r for c in caps for r in c], gz))
    assert ids == IDS[:2] + IDS[3:]
    assert lost(counts) == 1, counts


def test_non_utf8_headers(tmp_path):
    body = b"<html><p>bytes</p></html>"
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Weird: \xff\xfe\r\n\r\n" + body
    bad_value = record(
        "response",
        b"<urn:uuid:\xe9t\xe9>",
        http,
        {"WARC-Target-URI": b"http://caf\xe9.example/", "Content-Type": "application/http"},
    )
    bad_name = b"WARC/1.0\r\nWARC-T\xffpe: response\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n"
    data = b"".join([bad_name, bad_value, *captures()[0]])
    p = tmp_path / "x.warc"
    p.write_bytes(data)
    got, counts = ours(p)
    assert [g[0] for g in got] == ["<urn:uuid:\ufffdt\ufffd>", IDS[0]]
    assert [g[1] for g in got] == ["http://caf\ufffd.example/", PAGES[0].url]
    assert got[0][2] == body
    assert counts["dropped"] == {"bad_header": 1}


def test_wet_invalid_utf8_is_repaired_and_flagged(tmp_path):
    recs = [warcinfo(), conversion(0, "http://a/", "fine"), conversion(1, "http://b/", "x")]
    recs[2] = recs[2].replace(b"\r\n\r\nx\r\n", b"\r\n\r\n\xff\r\n")
    p = tmp_path / "y.warc.wet.gz"
    p.write_bytes(join(recs, True))
    (unit,) = list_units([str(p)], 10)
    stats: Counter = Counter()
    (t,) = read_unit(unit, 10, "text", stats, [])
    assert t.column("text").to_pylist() == ["fine", "\ufffd"]
    assert stats["flag:invalid_utf8_repaired"] == 1


def test_missing_and_zstd_files_are_unit_errors(tmp_path):
    (unit,) = list_units([str(tmp_path / "nope.warc.gz")], 10)
    with pytest.raises(UnitError, match="nope.warc.gz"):
        list(read_unit(unit, 10, "text", Counter(), []))
    z = tmp_path / "a.warc.zst"
    z.write_bytes(b"\x28\xb5\x2f\xfd")
    (unit,) = list_units([str(z)], 10)
    with pytest.raises(UnitError, match="zstd"):
        list(read_unit(unit, 10, "text", Counter(), []))


def test_read_batch_arguments():
    with pytest.raises(ValueError, match="max_docs"):
        _core.WarcReader(__file__).read_batch(0)
