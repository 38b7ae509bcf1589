"""Language identification, embedded (Rust ``whatlang``: no model download).

``detect_languages`` gives each text an ISO 639-1 code (639-3 for the few
languages without one) and a confidence in [0, 1], from its first
``max_bytes`` bytes, in Rust on all cores with the GIL released.
``language_stage`` adds ``lang``/``lang_score`` columns to a pyarrow Table
and keeps the rows in the wanted languages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from fastllm import _core
from fastllm.data.filters import _as_list
from fastllm.io.arrow import is_arrow, text_column


class Languages(NamedTuple):
    """Per-text results of :func:`detect_languages`, aligned with the input."""

    codes: list[str | None]
    """ISO 639-1 code, None where no language can be told (no letters, null)."""
    confidences: list[float]
    """whatlang's confidence in [0, 1]; 0.0 where ``codes`` is None."""


def detect_languages(texts: Sequence[str] | Any, max_bytes: int = 10_000) -> Languages:
    """The language of each text: a list of str, or an Arrow string/binary
    column (pyarrow Array or ChunkedArray, read in place by Rust)."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"detect_languages: max_bytes must be a positive int, got {max_bytes!r}")
    if is_arrow(texts):
        # Nulls come back as (None, 0.0), as for a null in a list.
        return Languages(
            *_core.detect_languages(text_column(texts, "detect_languages: texts"), max_bytes)
        )
    texts = _as_list(texts, "detect_languages: texts")
    codes: list[str | None] = [None] * len(texts)
    conf = [0.0] * len(texts)
    present = [k for k, t in enumerate(texts) if t is not None]
    c, p = _core.detect_languages([texts[k] for k in present], max_bytes)
    for k, ck, pk in zip(present, c, p, strict=True):
        codes[k] = ck
        conf[k] = pk
    return Languages(codes, conf)


def language_stage(
    table: Any,
    languages: Collection[str] | None = None,
    min_confidence: float = 0.0,
    column: str = "text",
) -> tuple[Any, dict[str, int]]:
    """Adds ``lang`` and ``lang_score`` to ``table`` and keeps rows whose
    language is in ``languages`` (all when None) with at least
    ``min_confidence``. Returns (kept rows, counts of dropped rows per reason:
    ``"lang_<code>"``, ``"lang_unknown"``, ``"lang_low_confidence"``)."""
    import pyarrow as pa

    if column not in table.column_names:
        raise ValueError(f"language_stage: table has no column {column!r}")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(
            f"language_stage: min_confidence must be in [0, 1], got {min_confidence!r}"
        )
    wanted = None if languages is None else set(languages)
    res = detect_languages(table.column(column))
    keep, reasons = [], Counter()
    for code, score in zip(res.codes, res.confidences, strict=True):
        if code is None:
            reasons["lang_unknown"] += 1
            keep.append(False)
        elif wanted is not None and code not in wanted:
            reasons[f"lang_{code}"] += 1
            keep.append(False)
        elif score < min_confidence:
            reasons["lang_low_confidence"] += 1
            keep.append(False)
        else:
            keep.append(True)
    table = table.append_column("lang", pa.array(res.codes, pa.string()))
    table = table.append_column("lang_score", pa.array(res.confidences, pa.float64()))
    return table.filter(pa.array(keep, pa.bool_())), dict(reasons)
