"""Property tests in the spirit of the cargo-fuzz targets (fuzz/): mutated
HTML into the extractor and mutated WARC/WET bytes into the reader. Nothing
may raise but the documented errors (for the reader: none, since damage is
counted; for the readers module: UnitError), and nothing may hang (each
example has a generous deadline as a hang guard, not a timing claim)."""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm import _core
from fastllm.data import extract_batch, extract_text
from fastllm.io.readers import list_units, read_unit
from tests.io.warc_files import Page, conversion, join, warc_records, warcinfo

PAGES = [
    Page(
        f"https://s{i}.example/p",
        (
            f"<!doctype html><html lang=en><head><title>T{i}</title><meta charset=utf-8></head>"
            f"<body><nav><a href=/>Home</a></nav><article><h1>Head {i}</h1>"
            f"<p>{'Some words of prose here. ' * (3 + i)}</p></article></body></html>"
        ).encode(),
        "image/png" if i == 3 else "text/html",
    )
    for i in range(5)
]
WARC = warc_records(PAGES)
WET = [warcinfo()] + [conversion(i, p.url, f"text number {i} é") for i, p in enumerate(PAGES)]
BASES = {
    "warc": join(WARC, False),
    "warc.gz": join(WARC, True),
    "wet": join(WET, False),
    "wet.gz": join(WET, True),
    "warc.one-member.gz": gzip.compress(join(WARC, False)),
}

HANG_GUARD = settings(
    deadline=timedelta(seconds=20),
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """`base` with a few byte-level edits: flips, inserts, deletions, a
    cut, a duplicated span, a splice of another span."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "dup", "digit"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0, 0x0A, 0x0D, 0x1F, 0x8B, 0x3A, 0x20, 0xFF]))
        elif op == "insert":
            data[i:i] = draw(
                st.sampled_from([b"\r\n", b"WARC/1.0\r\n", b"\x1f\x8b\x08", b"\r\n\r\n", b"\xff"])
                | st.binary(max_size=16)
            )
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "cut":
            del data[i:]
        elif op == "dup":
            j = min(len(data), i + draw(st.integers(1, 512)))
            data[j:j] = data[i:j]
        else:  # a digit changed: Content-Length and friends
            digits = [k for k, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                data[draw(st.sampled_from(digits))] = draw(st.integers(0x30, 0x39))
    return bytes(data)


def read_all(path: Path, wet: bool) -> tuple[int, dict]:
    r = _core.WarcReader(str(path), wet=wet, max_record_bytes=4096)
    n = 0
    while (b := r.read_batch(3)) is not None:
        ids, urls, data, offsets = b
        assert len(ids) == len(urls) == len(offsets) - 1
        assert offsets[-1] == len(data)
        assert all(offsets[i] < offsets[i + 1] for i in range(len(ids)))
        if wet:
            data.tobytes().decode("utf-8")
        n += len(ids)
    return n, r.counts()


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.mark.parametrize("name", sorted(BASES))
def test_mutated_warc_never_raises(scratch, name):
    wet = name.startswith("wet")
    path = scratch / f"m.{name}"
    path.write_bytes(BASES[name])
    expected, _ = read_all(path, wet)
    assert expected == (5 if wet else 4)

    @HANG_GUARD
    @given(mutated(BASES[name]))
    def check(data):
        path.write_bytes(data)
        n, counts = read_all(path, wet)
        assert n == counts["docs"]
        # Damage costs records; it invents at most one document per edit (a
        # duplicated record, a non-HTML type made unreadable).
        assert n <= expected + 6

    check()


@HANG_GUARD
@given(mutated(BASES["warc.gz"]))
def test_mutated_warc_through_read_unit(data):
    # The Python layer: no exception at all for damaged WARC files.
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.warc.gz"
        p.write_bytes(data)
        (unit,) = list_units([str(p)], 10)
        stats: Counter = Counter()
        rows = sum(len(t) for t in read_unit(unit, 4, "text", stats, []))
        drops = sum(v for k, v in stats.items() if k.startswith("drop:"))
        assert stats["docs"] - rows == drops


@HANG_GUARD
@given(st.data())
def test_mutated_html_never_raises(data):
    page = data.draw(st.sampled_from(PAGES)).body
    html = data.draw(mutated(page))
    texts = extract_batch([html, html.decode("utf-8", "replace")]).texts
    assert len(texts) == 2
    for t in texts:
        assert t is None or t.strip()
    assert extract_text(html) == texts[0]


@HANG_GUARD
@given(st.binary(max_size=2048))
def test_random_bytes_as_warc(scratch, raw):
    # Bytes from nothing, with and without a gzip wrapper.
    for i, data in enumerate((raw, gzip.compress(raw), b"WARC/1.0\r\n" + raw)):
        p = scratch / f"r{i}.warc"
        p.write_bytes(data)
        read_all(p, wet=False)
        read_all(p, wet=True)
