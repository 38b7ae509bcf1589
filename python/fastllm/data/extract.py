"""HTML to main text.

``extract_text`` returns a page's main content (article body, forum posts,
documentation text, product description) without navigation, headers,
footers, cookie banners, share widgets or comment chrome: paragraphs are
separated by blank lines, list items and headings kept as lines of text.
Bytes are decoded by byte-order mark, then ``<meta charset>``, then
detection; ``str`` is parsed as is. ``extract_batch`` does a whole batch in
Rust on all cores (see ``fastllm.set_num_threads``) with the GIL released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from fastllm import _core
from fastllm.io.arrow import is_arrow, text_column


class Extracted(NamedTuple):
    """Per-page results of :func:`extract_batch`, aligned with its input.

    Lists for list input; pyarrow ``string`` arrays for pyarrow input. An
    entry is None where the page has no main content (or no title, no
    ``<html lang>``).
    """

    texts: Any
    titles: Any
    langs: Any
    failures: Sequence[tuple[int, str]] = ()
    """``(row, message)`` of the pages the extractor failed on (a bug): None
    in all three columns, like a page without main content, but dropped as
    ``internal_error`` rather than ``no_main_text`` by the pipeline."""


def _check_page(html: object, where: str) -> None:
    if not isinstance(html, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"{where}: expected bytes or str, got {type(html).__name__}")


def extract_text(html: bytes | str, url: str | None = None) -> str | None:
    """The main text of one HTML page, or None when it has none.

    ``url`` (optional) helps charset detection of undeclared legacy pages.
    Raises RuntimeError if the extractor fails on the page (a bug).
    """
    _check_page(html, "extract_text: html")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"extract_text: url must be str or None, got {type(url).__name__}")
    if isinstance(html, memoryview):
        html = html.tobytes()
    return _core.extract_text(html, url)


def extract_batch(
    pages: Sequence[bytes | str] | Any, urls: Sequence[str | None] | Any | None = None
) -> Extracted:
    """Texts, titles and ``<html lang>`` hints of many pages at once.

    ``pages`` is a list of bytes/str, or an Arrow binary/string column (a
    pyarrow Array or ChunkedArray, or any ``__arrow_c_array__`` /
    ``__arrow_c_stream__`` producer; nulls give None) that Rust reads in
    place. ``urls``, if given, has one entry per page (with Arrow pages it
    may be an Arrow string column, read in place too).
    """
    if is_arrow(pages):
        return _extract_arrow(pages, urls)
    if isinstance(pages, (str, bytes)) or not isinstance(pages, Sequence):
        raise TypeError(
            f"extract_batch: pages must be a list of bytes/str, got {type(pages).__name__}"
        )
    pages = [p.tobytes() if isinstance(p, memoryview) else p for p in pages]
    for k, p in enumerate(pages):
        _check_page(p, f"extract_batch: pages[{k}]")
    urls = _check_urls(urls, len(pages))
    texts, titles, langs, failed = _core.extract_batch(pages, urls)
    return Extracted(*(pa.array(c).to_pylist() for c in (texts, titles, langs)), failed)


def _check_urls(urls: Sequence[str | None] | None, n: int) -> list[str | None] | None:
    if urls is None:
        return None
    urls = text_column(urls, "extract_batch: urls").to_pylist() if is_arrow(urls) else list(urls)
    if len(urls) != n:
        raise ValueError(f"extract_batch: {len(urls)} urls for {n} pages")
    for k, u in enumerate(urls):
        if u is not None and not isinstance(u, str):
            raise TypeError(f"extract_batch: urls[{k}] must be str or None, got {type(u).__name__}")
    return urls


def _extract_arrow(pages: Any, urls: Sequence[str | None] | Any | None) -> Extracted:
    """One call for the whole column, chunks included: Rust imports it
    through the Arrow C data interface without copying the pages."""
    pages = text_column(pages, "extract_batch: pages")
    if is_arrow(urls):
        urls = text_column(urls, "extract_batch: urls")
        if len(urls) != len(pages):
            raise ValueError(f"extract_batch: {len(urls)} urls for {len(pages)} pages")
    else:
        urls = _check_urls(urls, len(pages))
    texts, titles, langs, failed = _core.extract_arrow(pages, urls)
    # Arrow arrays built in Rust, imported without a copy: ``string``
    # (``large_string`` only past 2 GiB of text in one column).
    return Extracted(*(pa.array(c) for c in (texts, titles, langs)), failed)
