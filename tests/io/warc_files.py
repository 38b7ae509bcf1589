"""A small WARC/WET writer for the tests: WARC/1.0 records written by hand,
laid out as Common Crawl lays them out (warcinfo, then request / response /
metadata per capture; WET: warcinfo, then one conversion record per page),
each record its own gzip member when asked."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Page:
    url: str
    body: bytes
    content_type: str = "text/html; charset=UTF-8"
    payload_type: str | None = None  # WARC-Identified-Payload-Type


def record_id(seed: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}>"


def record(
    warc_type: str, rid: str | bytes, content: bytes, headers: dict[str, str | bytes]
) -> bytes:
    rid = rid if isinstance(rid, bytes) else rid.encode()
    lines = [b"WARC/1.0", f"WARC-Type: {warc_type}".encode(), b"WARC-Record-ID: " + rid]
    lines.append(b"WARC-Date: 2024-04-12T10:00:00Z")
    for k, v in headers.items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    lines.append(f"Content-Length: {len(content)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + content + b"\r\n\r\n"


def warcinfo() -> bytes:
    info = b"software: fastllm-tests\r\nformat: WARC File Format 1.0\r\n"
    return record("warcinfo", record_id("info"), info, {"Content-Type": "application/warc-fields"})


def capture(i: int, page: Page) -> list[bytes]:
    """request, response and metadata records of one fetch."""
    rid = record_id(f"response-{i}-{page.url}")
    host = page.url.split("/")[2] if "//" in page.url else "example.com"
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n".encode()
    http = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {page.content_type}\r\n"
        f"X-Crawler-Content-Length: {len(page.body)}\r\nContent-Length: {len(page.body)}\r\n\r\n"
    ).encode() + page.body
    common = {"WARC-Target-URI": page.url}
    resp_headers: dict[str, str | bytes] = {
        **common,
        "Content-Type": "application/http; msgtype=response",
        "WARC-Concurrent-To": record_id(f"request-{i}"),
    }
    if page.payload_type:
        resp_headers["WARC-Identified-Payload-Type"] = page.payload_type
    meta = b"fetchTimeMs: 12\r\n"
    return [
        record(
            "request",
            record_id(f"request-{i}"),
            req,
            {**common, "Content-Type": "application/http; msgtype=request"},
        ),
        record("response", rid, http, resp_headers),
        record(
            "metadata",
            record_id(f"meta-{i}"),
            meta,
            {**common, "Content-Type": "application/warc-fields"},
        ),
    ]


def conversion(i: int, url: str, text: str) -> bytes:
    return record(
        "conversion",
        record_id(f"conversion-{i}-{url}"),
        text.encode("utf-8"),
        {"WARC-Target-URI": url, "Content-Type": "text/plain"},
    )


def join(records: list[bytes], gzip_per_record: bool) -> bytes:
    if gzip_per_record:
        return b"".join(gzip.compress(r, compresslevel=6, mtime=0) for r in records)
    return b"".join(records)


def warc_records(pages: list[Page]) -> list[bytes]:
    out = [warcinfo()]
    for i, p in enumerate(pages):
        out += capture(i, p)
    return out


def wet_records(texts: list[tuple[str, str]]) -> list[bytes]:
    return [warcinfo()] + [conversion(i, url, t) for i, (url, t) in enumerate(texts)]


def html_dev_pages(root: Path, limit: int | None = None) -> list[Page]:
    """The html-dev pages, with their URLs, and a few non-HTML responses
    mixed in (an image, a PDF by payload type, JSON)."""
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    files = sorted((root / "html").glob("*.html.gz"))[:limit]
    pages = []
    for k, f in enumerate(files):
        pid = f.name.split(".")[0]
        pages.append(Page(truth[pid]["url"], gzip.decompress(f.read_bytes())))
        if k % 50 == 7:
            pages.append(
                Page(
                    f"https://img.example/{k}.png",
                    b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
                    "image/png",
                )
            )
        if k % 50 == 23:
            pages.append(
                Page(
                    f"https://docs.example/{k}.pdf", b"%PDF-1.4 ...", "text/html", "application/pdf"
                )
            )
        if k % 50 == 41:
            pages.append(Page(f"https://api.example/{k}", b'{"a": 1}', "application/json"))
    return pages


def html_dev_texts(root: Path, limit: int | None = None) -> list[tuple[str, str]]:
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    items = sorted(truth.items())[:limit]
    return [(v["url"], v["articleBody"]) for _, v in items]
