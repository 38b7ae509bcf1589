"""Reading documents from files: plain text, JSONL (optionally gzip/zstd
compressed) and Parquet. Each reader yields ``str`` documents and never
holds a whole file in memory (Parquet: one row group at a time)."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path


def _open_text(path: Path) -> io.TextIOBase:
    name = path.name
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(f"{path}: reading .zst needs the 'zstandard' package") from e
        stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
        return io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".gz", ".zst"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def iter_texts(path: str | os.PathLike, field: str = "text") -> Iterator[str]:
    """Yield the documents of one file.

    ``.jsonl``/``.json`` (optionally ``.gz``/``.zst``): the ``field`` of each
    line; ``.parquet``: the ``field`` column; anything else: the whole file
    as one document. A JSONL line that is not valid JSON raises ``ValueError``
    naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    stem = _stem(path)
    if stem.endswith(".parquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise ValueError(f"{path}: no column {field!r} (columns: {pf.schema_arrow.names})")
        for i in range(pf.num_row_groups):
            for value in pf.read_row_group(i, columns=[field]).column(0).to_pylist():
                if value:
                    yield value
        return
    with _open_text(path) as f:
        if stem.endswith((".jsonl", ".json", ".ndjson")):
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                value = record.get(field) if isinstance(record, dict) else None
                if isinstance(value, str) and value:
                    yield value
        else:
            text = f.read()
            if text:
                yield text
