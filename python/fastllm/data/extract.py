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

from fastllm import _core


class Extracted(NamedTuple):
    """Per-page results of :func:`extract_batch`, aligned with its input.

    Lists for list input; pyarrow ``string`` arrays for pyarrow input. An
    entry is None where the page has no main content (or no title, no
    ``<html lang>``).
    """

    texts: Any
    titles: Any
    langs: Any


def _check_page(html: object, where: str) -> None:
    if not isinstance(html, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"{where}: expected bytes or str, got {type(html).__name__}")


def extract_text(html: bytes | str, url: str | None = None) -> str | None:
    """The main text of one HTML page, or None when it has none.

    ``url`` (optional) helps charset detection of undeclared legacy pages.
    """
    _check_page(html, "extract_text: html")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"extract_text: url must be str or None, got {type(url).__name__}")
    if isinstance(html, memoryview):
        html = html.tobytes()
    return _core.extract_text(html, url)


def extract_batch(
    pages: Sequence[bytes | str] | Any, urls: Sequence[str | None] | None = None
) -> Extracted:
    """Texts, titles and ``<html lang>`` hints of many pages at once.

    ``pages`` is a list of bytes/str or a pyarrow ``binary``/``string``
    array (nulls give None). ``urls``, if given, has one entry per page.
    """
    arrow = _is_arrow(pages)
    if arrow:
        pages = [b"" if p is None else p for p in pages.to_pylist()]
    elif isinstance(pages, (str, bytes)) or not isinstance(pages, Sequence):
        raise TypeError(
            f"extract_batch: pages must be a list of bytes/str, got {type(pages).__name__}"
        )
    pages = [p.tobytes() if isinstance(p, memoryview) else p for p in pages]
    for k, p in enumerate(pages):
        _check_page(p, f"extract_batch: pages[{k}]")
    if urls is not None:
        urls = list(urls)
        if len(urls) != len(pages):
            raise ValueError(f"extract_batch: {len(urls)} urls for {len(pages)} pages")
        for k, u in enumerate(urls):
            if u is not None and not isinstance(u, str):
                raise TypeError(
                    f"extract_batch: urls[{k}] must be str or None, got {type(u).__name__}"
                )
    texts, titles, langs = _core.extract_batch(pages, urls)
    if arrow:
        import pyarrow as pa

        return Extracted(
            pa.array(texts, pa.string()),
            pa.array(titles, pa.string()),
            pa.array(langs, pa.string()),
        )
    return Extracted(texts, titles, langs)


def _is_arrow(obj: object) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pyarrow") and hasattr(obj, "to_pylist")
