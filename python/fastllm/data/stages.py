"""The per-batch stages and their contract.

A :class:`Stage` takes a ``pyarrow.Table`` (at least ``id``, ``text``,
``source``) and returns the kept rows plus a count per drop reason. Stages
are pure functions of the batch (no state across batches), which is what
lets the local engine restart per unit and the Ray engine run them inside
``map_batches``. Quality filters plug in as ``filter.stages =
["module:factory"]``: ``factory()`` returns a Stage.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from fastllm.data.config import ConfigError


@runtime_checkable
class Stage(Protocol):
    """``stage(table) -> (kept table, {reason: dropped documents})``."""

    name: str

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]: ...


class Extract:
    """HTML (``html`` binary column) → main text (``text``); pages without
    main content are dropped as ``no_main_text``. With ``enabled=False`` the
    HTML is decoded as text unchanged (invalid UTF-8 replaced)."""

    name = "extract"

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        if "html" not in table.column_names:
            return table, {}
        html = table.column("html")
        if html.num_chunks > 1 and html.nbytes < (1 << 30):
            # One array, so that the extractor spreads the whole batch over
            # its threads (WARC tables come in chunks of a few MB).
            html = html.combine_chunks()
        if self.enabled:
            from fastllm.data.extract import extract_batch

            # WARC inputs carry the page's URL: its TLD helps guess the
            # charset of pages that do not declare one.
            urls = table.column("url").to_pylist() if "url" in table.column_names else None
            text = extract_batch(html, urls).texts
        else:
            text = pa.array([b.decode("utf-8", "replace") for b in html.to_pylist()], pa.string())
        out = table.drop_columns(["html"]).append_column("text", text)
        keep = pc.invert(pc.is_null(text))
        kept = out.filter(keep)
        dropped = len(out) - len(kept)
        return kept, ({"no_main_text": dropped} if dropped else {})


class LengthFilter:
    """Drop documents with fewer than ``min_chars`` or more than ``max_chars``
    characters (0: no upper limit)."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int = 0):
        self.min_chars, self.max_chars = min_chars, max_chars

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        n = pc.utf8_length(table.column("text"))
        short = pc.less(n, self.min_chars)
        long = pc.greater(n, self.max_chars) if self.max_chars else pc.less(n, 0)
        counts = {}
        if (k := pc.sum(short).as_py() or 0) > 0:
            counts["too_short"] = k
        if (k := pc.sum(long).as_py() or 0) > 0:
            counts["too_long"] = k
        if not counts:
            return table, counts
        return table.filter(pc.invert(pc.or_(short, long))), counts


def load_stage(spec: str) -> Stage:
    """``"package.module:factory"`` → ``factory()``, checked to be a Stage."""
    mod_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"filter.stages: cannot load {spec!r}: {e}") from None
    stage = factory()
    if not isinstance(stage, Stage):
        raise ConfigError(
            f"filter.stages: {spec!r} returned {type(stage).__name__}, "
            "not a Stage (a callable with a .name)"
        )
    return stage


def build_filters(min_chars: int, max_chars: int, specs: list[str]) -> list[Stage]:
    stages: list[Stage] = []
    if min_chars or max_chars:
        stages.append(LengthFilter(min_chars, max_chars))
    stages += [load_stage(s) for s in specs]
    return stages
