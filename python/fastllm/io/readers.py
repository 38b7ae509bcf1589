"""Reading documents from files: the one implementation for HTML pages,
JSONL (optionally ``.gz``/``.zst``), Parquet, plain text and WARC/WET.

One reader per format yields every document of a file with what is wrong
with it, if anything; three views decide what a problem means for them:

- :func:`read_unit`: the pipeline's, restartable *units* as Arrow batches
  with ids, every problem counted and skipped;
- :func:`iter_texts`: one file's non-empty documents as ``str`` (what
  ``Tokenizer.train`` reads from a path); bad JSON raises;
- :func:`text_batches`: one file's rows in batches, row ``i`` being document
  ``i`` (what the out-of-core dedup numbers); bad JSON raises.

A *unit* is what a rerun skips when finished: one JSONL/Parquet/text/WARC/WET
file, or up to ``input.html_pages_per_unit`` HTML pages (``.html``/``.htm``,
optionally ``.gz``) of one directory. A unit yields ``pyarrow.Table`` batches
of ``id`` (``file:line``, ``file``, or the ``WARC-Record-ID``), either
``text`` (string) or ``html`` (binary, for the extract stage), ``source``, and
for WARC/WET files ``url`` (``WARC-Target-URI``).

WARC files (``.warc``, ``.warc.gz``) give their HTML ``response`` records
with the HTTP headers removed; WET files (``.wet``, ``.wet.gz``,
``.warc.wet.gz``) their ``conversion`` records as text. The Rust reader
(``fastllm._core.WarcReader``) steps over damage: a truncated or corrupt gzip
member, a truncated record, a bad ``Content-Length``, garbage between
records each cost only the records they touch, counted as ``drop:<reason>``
(non-HTML responses as ``drop:non_html``); record types that are not
documents are counted as ``flag:warc_<type>``.

Bad input never raises out of a batch: a line that is not JSON, a page that
cannot be decompressed, an empty document are counted as drop reasons
(``stats``); invalid UTF-8 is repaired with U+FFFD and counted. A file that
cannot be read to its end (a truncated ``.gz``) raises :class:`UnitError`
naming the file; the pipeline skips that unit and reports it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

_HTML = (".html", ".htm")
_JSONL = (".jsonl", ".json", ".ndjson")
# Common Crawl names its WET files ``*.warc.wet.gz``: ".wet" is tested first.
_WET = (".wet",)
_WARC = (".warc",)


class UnitError(ValueError):
    """A unit could not be read; the message names the file and the cause."""


@dataclass(frozen=True)
class Unit:
    index: int
    kind: str  # "jsonl" | "parquet" | "text" | "html" | "warc" | "wet"
    source: str
    files: tuple[Path, ...]

    def key(self) -> str:
        """Changes when any of the unit's files changes (path, size, mtime)."""
        h = hashlib.sha256(self.kind.encode())
        for f in self.files:
            st = f.stat()
            h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def _stem(name: str) -> str:
    for ext in (".gz", ".zst"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def kind_of(path: str | os.PathLike) -> str:
    """``"html"``, ``"jsonl"``, ``"parquet"``, ``"wet"``, ``"warc"`` or
    ``"text"``, from the file name (a ``.gz``/``.zst`` suffix is looked through)."""
    stem = _stem(Path(path).name).lower()
    if stem.endswith(_HTML):
        return "html"
    if stem.endswith(_JSONL):
        return "jsonl"
    if stem.endswith(".parquet"):
        return "parquet"
    if stem.endswith(_WET):
        return "wet"
    if stem.endswith(_WARC):
        return "warc"
    return "text"


_kind = kind_of


def list_units(paths: list[str], html_pages_per_unit: int) -> list[Unit]:
    """The units of the inputs, in a fixed order (inputs as given, files sorted)."""
    units: list[Unit] = []

    def add(kind: str, source: str, files: list[Path]) -> None:
        units.append(Unit(len(units), kind, source, tuple(files)))

    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            # HTML pages grouped by their directory, whose name is their source.
            by_dir: dict[Path, list[Path]] = {}
            for f in files:
                if _kind(f) == "html":
                    by_dir.setdefault(f.parent, []).append(f)
            for parent, html in by_dir.items():
                for i in range(0, len(html), html_pages_per_unit):
                    add("html", parent.name, html[i : i + html_pages_per_unit])
            for f in files:
                if _kind(f) != "html":
                    add(_kind(f), _stem(f.name).split(".")[0], [f])
        else:
            add(_kind(p), _stem(p.name).split(".")[0], [p])
    return units


def open_binary(path: str | os.PathLike) -> io.BufferedIOBase:
    """``path`` opened for reading bytes, decompressed when it ends in
    ``.gz`` or ``.zst``."""
    path = Path(path)
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise UnitError(f"{path}: reading .zst needs the 'zstandard' package") from None
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    return open(path, "rb")


_open_binary = open_binary


def _decode(raw: bytes, stats: Counter) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        stats["flag:invalid_utf8_repaired"] += 1
        return raw.decode("utf-8", errors="replace")


_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


# ---- one reader per format ------------------------------------------------
# Each yields every document of a file with what is wrong with it, if
# anything; the three views below (pipeline units, texts, row batches)
# decide what a problem means for them.


def _jsonl_records(
    path: Path, field: str, stats: Counter
) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, problem) of each non-blank line: problem is None,
    ``"bad_json"``, ``"not_object"``, ``"no_field"`` (missing or not a
    string) or ``"empty"``, and text is None unless it is None."""
    with open_binary(path) as f:
        for lineno, line in enumerate(f, 1):
            stats["bytes"] += len(line)
            if not line.strip():
                continue
            stats["docs"] += 1
            try:
                record = json.loads(_decode(line, stats))
            except json.JSONDecodeError:
                yield lineno, None, "bad_json"
                continue
            if not isinstance(record, dict):
                yield lineno, None, "not_object"
                continue
            value = record.get(field)
            if not isinstance(value, str):
                yield lineno, None, "no_field"
            elif not value:
                yield lineno, None, "empty"
            else:
                yield lineno, value, None


def _parquet_columns(path: Path, field: str, batch_size: int) -> Iterator[pa.Array]:
    """The ``field`` column of a Parquet file, ``batch_size`` rows at a time
    (one batch in memory). A missing column is a :class:`UnitError` now,
    not at the first batch."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if field not in pf.schema_arrow.names:
        raise UnitError(f"{path}: no column {field!r} (columns: {pf.schema_arrow.names})")
    return (b.column(0) for b in pf.iter_batches(batch_size=batch_size, columns=[field]))


def _whole(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        # One C call for the whole file: GzipFile.read() loops in Python chunks.
        return gzip.decompress(path.read_bytes())
    with open_binary(path) as f:
        return f.read()


# ---- the pipeline's view: units as Arrow batches -------------------------


def read_unit(
    unit: Unit, batch_size: int, text_field: str, stats: Counter, errors: list[str]
) -> Iterator[pa.Table]:
    """Arrow batches of the unit's documents; counts into ``stats``
    (``docs``, ``bytes``, ``drop:<reason>``, ``flag:<what>``), messages
    about skipped documents into ``errors``."""
    if unit.kind in ("warc", "wet"):
        yield from _warc(unit, batch_size, stats, errors)
        return
    reader = {"jsonl": _jsonl, "parquet": _parquet, "text": _text, "html": _html}[unit.kind]
    ids: list[str] = []
    docs: list = []
    for doc_id, doc in reader(unit, text_field, batch_size, stats, errors):
        ids.append(doc_id)
        docs.append(doc)
        if len(docs) >= batch_size:
            yield _table(unit, ids, docs)
            ids, docs = [], []
    if docs:
        yield _table(unit, ids, docs)


def _table(unit: Unit, ids: list[str], docs: list) -> pa.Table:
    col = "html" if unit.kind == "html" else "text"
    typ = pa.binary() if unit.kind == "html" else pa.string()
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            col: pa.array(docs, typ),
            "source": pa.array([unit.source] * len(ids), pa.string()),
        }
    )


def _jsonl(unit: Unit, field: str, batch_size: int, stats: Counter, errors: list[str]):
    (path,) = unit.files
    lineno = 0
    drop = {"bad_json": "bad_json", "not_object": f"no_{field}_field",
            "no_field": f"no_{field}_field", "empty": "empty"}  # fmt: skip
    try:
        for lineno, value, problem in _jsonl_records(path, field, stats):
            if problem is None:
                yield f"{path.name}:{lineno}", value
            else:
                stats[f"drop:{drop[problem]}"] += 1
    except _READ_ERRORS as e:
        raise UnitError(f"{path}: unreadable after line {lineno}: {e}") from None


def _parquet(unit: Unit, field: str, batch_size: int, stats: Counter, errors: list[str]):
    (path,) = unit.files
    try:
        columns = _parquet_columns(path, field, batch_size)
        stats["bytes"] += path.stat().st_size
        row = 0
        for col in columns:
            for value in col.to_pylist():
                stats["docs"] += 1
                if isinstance(value, bytes):
                    value = _decode(value, stats)
                if not value:
                    stats["drop:empty"] += 1
                else:
                    yield f"{path.name}:{row}", value
                row += 1
    except (pa.ArrowInvalid, *_READ_ERRORS) as e:
        raise UnitError(f"{path}: unreadable Parquet: {e}") from None


def _text(unit: Unit, field: str, batch_size: int, stats: Counter, errors: list[str]):
    (path,) = unit.files
    try:
        with open_binary(path) as f:
            raw = f.read()
    except _READ_ERRORS as e:
        raise UnitError(f"{path}: unreadable: {e}") from None
    stats["bytes"] += len(raw)
    stats["docs"] += 1
    if not raw:
        stats["drop:empty"] += 1
        return
    yield path.name, _decode(raw, stats)


def _html(unit: Unit, field: str, batch_size: int, stats: Counter, errors: list[str]):
    # One page per file; a page that cannot be read is one dropped document,
    # not a lost unit (pages are independent).
    for path in unit.files:
        stats["docs"] += 1
        try:
            raw = _whole(path)
        except (*_READ_ERRORS, UnitError) as e:
            stats["drop:unreadable"] += 1
            errors.append(f"{path}: skipped, unreadable: {e}")
            continue
        stats["bytes"] += len(raw)
        if not raw.strip():
            stats["drop:empty"] += 1
            continue
        yield os.path.relpath(path, path.parent.parent), raw


# ---- one file's documents as str -----------------------------------------


def iter_texts(path: str | os.PathLike, field: str = "text") -> Iterator[str]:
    """Yield the non-empty documents of one file, as ``str``.

    JSONL (``.jsonl``/``.json``/``.ndjson``, optionally ``.gz``/``.zst``):
    the ``field`` of each line; Parquet: the ``field`` column; WARC: the
    HTML of each response record, WET: each conversion record; anything else
    (HTML pages included): the whole file as one document. Invalid UTF-8 is
    replaced. A JSONL line that is not valid JSON raises ``ValueError``
    naming the file and line; a missing file ``FileNotFoundError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    stats: Counter = Counter()
    kind = kind_of(path)
    if kind == "jsonl":
        for lineno, value, problem in _jsonl_records(path, field, stats):
            if problem == "bad_json":
                raise ValueError(f"{path}:{lineno}: not valid JSON")
            if value is not None:
                yield value
    elif kind == "parquet":
        for col in _parquet_columns(path, field, 1 << 16):
            for value in col.to_pylist():
                if isinstance(value, bytes):
                    value = _decode(value, stats)
                if value:
                    yield value
    elif kind in ("warc", "wet"):
        unit = Unit(0, kind, "", (path,))
        for table in _warc(unit, 1024, stats, []):
            col = table.column("text" if kind == "wet" else "html")
            for value in col.to_pylist():
                if isinstance(value, bytes):
                    value = _decode(value, stats)
                if value:
                    yield value
    else:
        text = _decode(_whole(path), stats)
        if text:
            yield text


# ---- one file's rows, in batches -------------------------------------------


def text_batches(
    path: str | os.PathLike, field: str = "text", batch_size: int = 10_000
) -> Iterator[list[str] | pa.Array]:
    """Every document of one JSONL, Parquet or text file, ``batch_size`` at
    a time, one per row: row ``i`` of the file is document ``i`` (what the
    out-of-core dedup numbers). Parquet batches are Arrow columns, read in
    place by the kernels (a null is ""); JSONL batches are lists of ``str``
    (a missing, empty or non-string ``field`` is ""; blank lines are not
    rows). A line that is not a JSON object raises ``ValueError`` naming
    the file and line."""
    path = Path(path)
    kind = kind_of(path)
    if kind == "parquet":
        yield from _parquet_columns(path, field, batch_size)
        return
    if kind == "text":
        yield [_decode(_whole(path), Counter())]
        return
    if kind != "jsonl":
        raise ValueError(f"{path}: {kind} files have no rows (JSONL, Parquet or text)")
    batch: list[str] = []
    for lineno, value, problem in _jsonl_records(path, field, Counter()):
        if problem in ("bad_json", "not_object"):
            raise ValueError(f"{path}:{lineno}: not a JSON object")
        batch.append(value or "")
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# Payload bytes per chunk read from Rust: a few MB, which the allocator
# reuses (tens of MB would be fresh pages, and page faults, every time). A
# table is up to ``batch_size`` documents in such chunks, without a copy.
_WARC_CHUNK_BYTES = 2 << 20


def _warc(unit: Unit, batch_size: int, stats: Counter, errors: list[str]) -> Iterator[pa.Table]:
    from fastllm import _core

    (path,) = unit.files
    wet = unit.kind == "wet"
    if path.name.endswith(".zst"):
        raise UnitError(f"{path}: zstd-compressed WARC/WET files are not supported (use gzip)")
    col, typ = ("text", pa.string()) if wet else ("html", pa.binary())
    try:
        reader = _core.WarcReader(str(path), wet=wet)
    except OSError as e:
        raise UnitError(f"{path}: unreadable: {e}") from None
    stats["bytes"] += path.stat().st_size

    def table(ids: list[str], urls: list[str], chunks: list[pa.Array]) -> pa.Table:
        return pa.table(
            {
                "id": pa.array(ids, pa.string()),
                col: pa.chunked_array(chunks, typ),
                "source": pa.array([unit.source] * len(ids), pa.string()),
                "url": pa.array(urls, pa.string()),
            }
        )

    ids: list[str] = []
    urls: list[str] = []
    chunks: list[pa.Array] = []
    try:
        while True:
            batch = reader.read_batch(batch_size - len(ids), _WARC_CHUNK_BYTES)
            if batch is None:
                break
            b_ids, b_urls, data, offsets = batch
            # The payloads as Rust laid them out, in numpy arrays: no copy.
            chunks.append(
                pa.Array.from_buffers(
                    typ, len(b_ids), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
                )
            )
            ids += b_ids
            urls += b_urls
            if len(ids) >= batch_size:
                yield table(ids, urls, chunks)
                ids, urls, chunks = [], [], []
        if ids:
            yield table(ids, urls, chunks)
    except OSError as e:
        raise UnitError(f"{path}: unreadable: {e}") from None
    finally:
        _warc_counts(reader, path, stats, errors)


def _warc_counts(reader, path: Path, stats: Counter, errors: list[str]) -> None:
    c = reader.counts()
    stats["docs"] += c["docs"] + sum(c["dropped"].values())
    for reason, n in c["dropped"].items():
        stats[f"drop:{reason}"] += n
    for warc_type, n in c["other_types"]:
        stats[f"flag:warc_{warc_type or 'untyped'}"] += n
    for key in ("garbage_bytes", "gzip_errors", "utf8_repaired"):
        if c[key]:
            name = "invalid_utf8_repaired" if key == "utf8_repaired" else key
            stats[f"flag:{name}"] += c[key]
    errors.extend(f"{path}: {m}" for m in reader.messages())
