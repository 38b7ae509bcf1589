"""Atomic file writes: the whole new content or the old file, never a torn one.

Every file the package writes goes through here: written to a temporary
name in the same directory (a name starting with ``.`` and ending in
``.tmp``, so a directory scan can tell it from a finished file), flushed
and fsynced, then renamed over the target, and the directory fsynced so the
rename survives a power cut. A writer killed at any point leaves the target
as it was and at most a temporary file behind.

- :func:`write_text_atomic`, :func:`write_bytes_atomic`,
  :func:`write_json_atomic`: a whole file from memory;
- :func:`atomic_open`: a file object for streaming writes (Arrow IPC,
  ``np.save``, gzip);
- :func:`atomic_path`: a temporary path for writers that only take a name
  (Parquet, safetensors), fsynced and renamed when the block ends;
- :func:`atomic_dir`, :func:`commit_dir`: a directory of files published as
  one (shard sets, exported models).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _temp_name(path: Path) -> Path:
    # Not mkstemp: its files are 0600; these get the umask's permissions,
    # like any file the user creates.
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - 1 in 2**32
            continue


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the entries of directory ``path`` (a rename into it) durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse it
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (its directory created) for a writer
    that takes a file name; when the block ends without an exception the
    file is fsynced and renamed to ``path``, otherwise removed.

    >>> with atomic_path("out/x.parquet") as tmp:   # doctest: +SKIP
    ...     pq.write_table(table, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        _publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"wb"`` or
    ``"w"``); when the block ends without an exception it is flushed,
    fsynced and renamed to ``path``, otherwise removed."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f
        f.flush()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating its directory."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its directory."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(
    path: str | os.PathLike, obj: Any, *, indent: int = 2, sort_keys: bool = False
) -> None:
    """``obj`` as indented JSON (plus a final newline), written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def _sync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


def commit_dir(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Publish the finished directory ``tmp`` as ``path``: every file in it
    fsynced, then renamed into place. An old ``path`` is moved aside first
    and removed after, so ``path`` is always either the old directory or the
    new one (or, for the instant between two renames, absent)."""
    tmp, path = Path(tmp), Path(path)
    _sync_tree(tmp)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old.tmp")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old)


def fresh_dir(path: str | os.PathLike) -> Path:
    """An empty directory at ``path`` (what was there is removed)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """An empty temporary directory ``.NAME.tmp`` beside ``path`` to fill;
    when the block ends without an exception it is committed as ``path``
    (:func:`commit_dir`), otherwise removed."""
    path = Path(path)
    tmp = fresh_dir(path.with_name(f".{path.name}.tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_dir(tmp, path)


__all__ = [
    "atomic_dir",
    "atomic_open",
    "atomic_path",
    "commit_dir",
    "fresh_dir",
    "fsync_dir",
    "fsync_file",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
