"""Language identification, embedded (Rust ``whatlang``: no model download).

``detect_languages`` gives each text an ISO 639-1 code (639-3 for the few
languages without one) and a confidence in [0, 1], from its first
``max_bytes`` bytes, in Rust on all cores with the GIL released.
``language_stage`` adds ``lang``/``lang_score`` columns to a pyarrow Table
and keeps the rows in the wanted languages.
"""

from __future__ import annotations

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
    failed: Sequence[int] = ()
    """Rows whose detection failed (a bug): code None, confidence 0.0."""


def _check_max_bytes(max_bytes: Any) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"detect_languages: max_bytes must be a positive int, got {max_bytes!r}")


def _run(texts: Any, max_bytes: int) -> tuple[Any, Any, list[tuple[int, str]]]:
    """Codes (pyarrow string, null where unknown) and confidences (float64)
    of ``texts``, and ``(row, message)`` of the rows detection failed on."""
    import pyarrow as pa

    codes, conf, failed = _core.detect_languages(texts, max_bytes)
    return pa.array(codes), pa.array(conf), failed


def detect_languages(texts: Sequence[str] | Any, max_bytes: int = 10_000) -> Languages:
    """The language of each text: a list of str, or an Arrow string/binary
    column (pyarrow Array or ChunkedArray, read in place by Rust)."""
    _check_max_bytes(max_bytes)
    if is_arrow(texts):
        # Nulls come back as (None, 0.0), as for a null in a list.
        c, p, failed = _run(text_column(texts, "detect_languages: texts"), max_bytes)
        return Languages(c.to_pylist(), p.to_pylist(), [k for k, _ in failed])
    texts = _as_list(texts, "detect_languages: texts")
    codes: list[str | None] = [None] * len(texts)
    conf = [0.0] * len(texts)
    present = [k for k, t in enumerate(texts) if t is not None]
    c, p, failed = _run([texts[k] for k in present], max_bytes)
    for k, ck, pk in zip(present, c.to_pylist(), p.to_pylist(), strict=True):
        codes[k] = ck
        conf[k] = pk
    return Languages(codes, conf, [present[k] for k, _ in failed])


def language_stage(
    table: Any,
    languages: Collection[str] | None = None,
    min_confidence: float = 0.0,
    column: str = "text",
    errors: list[str] | None = None,
) -> tuple[Any, dict[str, int]]:
    """Adds ``lang`` and ``lang_score`` to ``table`` and keeps rows whose
    language is in ``languages`` (all when None) with at least
    ``min_confidence``. Returns (kept rows, counts of dropped rows per reason:
    ``"lang_<code>"``, ``"lang_unknown"``, ``"lang_low_confidence"``, and
    ``"internal_error"`` for rows detection failed on, which are named in
    ``errors`` when it is given). Column-wise in Arrow: no per-document
    Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise ValueError(f"language_stage: table has no column {column!r}")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(
            f"language_stage: min_confidence must be in [0, 1], got {min_confidence!r}"
        )
    codes, conf, failed = _run(text_column(table.column(column), "language_stage: texts"), 10_000)
    known = pc.is_valid(codes)
    wanted = (
        known
        if languages is None
        else pc.is_in(codes, value_set=pa.array(sorted(set(languages)), pa.string()))
    )
    sure = pc.greater_equal(conf, pa.scalar(float(min_confidence), pa.float64()))
    keep = pc.and_(wanted, sure)
    counts: dict[str, int] = {}
    unknown = len(codes) - pc.sum(known).as_py() - len(failed)
    if unknown:
        counts["lang_unknown"] = unknown
    for d in pc.value_counts(codes.filter(pc.and_not(known, wanted))).to_pylist():
        counts[f"lang_{d['values']}"] = d["counts"]
    if low := pc.sum(pc.and_not(wanted, sure)).as_py() or 0:
        counts["lang_low_confidence"] = low
    if failed:
        counts["internal_error"] = len(failed)
        if errors is not None:
            from fastllm.data.filters import internal_errors

            errors += internal_errors(table, failed, "langid")
    table = table.append_column("lang", codes.cast(pa.string()))
    table = table.append_column("lang_score", conf)
    return table.filter(keep), counts
