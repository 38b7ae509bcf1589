"""Quality filters with datatrove's definitions and default thresholds.

Four rule families, each a config dataclass (every threshold a field with
datatrove's default); ``None`` for a family leaves it out, ``None`` (or 0)
for an optional threshold turns that one rule off:

- :class:`GopherRepetitionConfig` — duplicate lines/paragraphs and n-grams
  (datatrove ``GopherRepetitionFilter``)
- :class:`GopherQualityConfig` — word counts and lengths, symbols, bullets,
  stop words (``GopherQualityFilter``)
- :class:`C4Config` — C4's line and page rules; kept documents lose the
  lines C4 drops (``C4QualityFilter``)
- :class:`FineWebConfig` — FineWeb's line-punctuation, short-line,
  duplicate-line and list rules (``FineWebQualityFilter``)

The families run in that order (FineWeb's pipeline order), in Rust on all
cores with the GIL released. Every dropped document carries datatrove's
reason string (``"gopher_short_doc"``, ``"top_2_gram"``, ``"too_few_sentences"``,
...). Words are English words split as datatrove's spaCy tokenizer splits
them (see ``rust/src/filter/words.rs`` for the known differences).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastllm import _core
from fastllm.config import Section, check, knob
from fastllm.io.arrow import is_arrow, null_indices, text_column

# C4's integer rules are turned off with -1 (datatrove's convention).
_MINUS_ONE_OFF = {"min_num_sentences", "min_words_per_line", "max_word_length"}


class _Thresholds(Section):
    """A filter family's config: every threshold's range is checked at
    construction (0 or None turns an optional rule off, -1 C4's integer rules)."""

    def validate(self) -> None:
        for fd in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, fd.name)
            if isinstance(v, bool) or v is None or isinstance(v, str):
                continue
            if isinstance(v, (int, float)):
                if fd.name in _MINUS_ONE_OFF:
                    check(v >= -1, fd.name, f"must be >= 0 (or -1 to disable), got {v!r}")
                else:
                    check(v >= 0, fd.name, f"must be >= 0 (0 disables an optional rule), got {v!r}")
            elif fd.name in ("top_n_grams", "dup_n_grams"):
                for k, pair in enumerate(v):
                    ok = isinstance(pair, (tuple, list)) and len(pair) == 2
                    check(
                        ok and pair[0] >= 1 and pair[1] >= 0,
                        f"{fd.name}[{k}]",
                        f"must be [n >= 1, fraction >= 0], got {pair!r}",
                    )
            elif fd.name == "stop_chars":
                for k, c in enumerate(v):
                    check(
                        isinstance(c, str) and len(c) == 1, f"{fd.name}[{k}]", f"{c!r} is not one character"
                    )


@dataclass
class GopherRepetitionConfig(_Thresholds):
    """Gopher repetition rules (Rae et al. 2021, table A1)."""

    dup_line_frac: float | None = knob(0.3, 'Max fraction of lines that repeat an earlier line.')
    dup_para_frac: float | None = knob(0.3, 'Max fraction of paragraphs that repeat an earlier paragraph.')
    dup_line_char_frac: float | None = knob(0.2, 'Max fraction of characters in repeated lines.')
    dup_para_char_frac: float | None = knob(0.2, 'Max fraction of characters in repeated paragraphs.')
    top_n_grams: tuple[tuple[int, float], ...] = knob(((2, 0.2), (3, 0.18), (4, 0.16)), '(n, max fraction of characters in the most frequent word n-gram).')
    dup_n_grams: tuple[tuple[int, float], ...] = knob(
        ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)),
        "(n, max fraction of characters in duplicated word n-grams).",
    )


@dataclass
class GopherQualityConfig(_Thresholds):
    """Gopher quality rules (Rae et al. 2021)."""

    min_doc_words: int | None = knob(50, 'Fewest non-symbol words.')
    max_doc_words: int | None = knob(100_000, 'Most non-symbol words.')
    min_avg_word_length: float | None = knob(3, 'Smallest mean length of non-symbol words, in characters.')
    max_avg_word_length: float | None = knob(10, 'Largest mean length of non-symbol words, in characters.')
    max_symbol_word_ratio: float | None = knob(0.1, "Max '#' per word, and max ellipses per word.")
    max_bullet_lines_ratio: float | None = knob(0.9, "Max fraction of lines starting with a bullet ('•' or '-').")
    max_ellipsis_lines_ratio: float | None = knob(0.3, 'Max fraction of lines ending with an ellipsis.')
    max_non_alpha_words_ratio: float | None = knob(0.8, "Min fraction of words with a letter (datatrove's name, a minimum).")
    min_stop_words: int | None = knob(2, 'Fewest distinct stop words present.')
    stop_words: tuple[str, ...] = knob(("the", "be", "to", "of", "and", "that", "have", "with"), 'The stop words (case-sensitive, whole words).')


@dataclass
class C4Config(_Thresholds):
    """C4 rules (Raffel et al. 2020) as datatrove implements them."""

    remove_citations: bool = knob(True, 'Remove Wikipedia citation marks ([1], [edit], [citation needed]).')
    filter_no_terminal_punct: bool = knob(True, 'Drop lines not ending in . ? ! " \' (or ending in \'...\').')
    min_num_sentences: int = knob(5, 'Drop documents with fewer sentences left (-1 disables).')
    min_words_per_line: int = knob(3, 'Drop lines with fewer words (-1 disables).')
    max_word_length: int = knob(1000, 'Drop lines with a longer word, in characters (-1 disables).')
    filter_lorem_ipsum: bool = knob(True, "Drop documents containing 'lorem ipsum'.")
    filter_javascript: bool = knob(True, "Drop lines mentioning 'javascript'.")
    filter_curly_bracket: bool = knob(True, "Drop documents containing '{'.")
    filter_policy: bool = knob(True, 'Drop lines with cookie/terms-of-use/privacy-policy phrases.')


@dataclass
class FineWebConfig(_Thresholds):
    """FineWeb quality rules (Penedo et al. 2024)."""

    line_punct_thr: float = knob(0.12, 'Min fraction of lines ending in terminal punctuation.')
    line_punct_exclude_zero: bool = knob(False, 'Keep documents where no line ends in punctuation.')
    stop_chars: tuple[str, ...] | None = knob(None, "Line-final characters that count; None for datatrove's TERMINAL_PUNCTUATION.")
    short_line_thr: float = knob(0.67, 'Max fraction of short lines.')
    short_line_length: int = knob(30, 'A line this long or shorter (characters) is short.')
    char_duplicates_ratio: float = knob(0.01, 'Max fraction of characters in repeated lines.')
    new_line_ratio: float = knob(0.3, 'Max newlines per word.')


_FAMILIES = {
    "gopher_repetition": GopherRepetitionConfig,
    "gopher_quality": GopherQualityConfig,
    "c4": C4Config,
    "fineweb": FineWebConfig,
}


@dataclass
class QualityFilterConfig(Section):
    """Which filter families run, and their thresholds (None leaves one out)."""

    table = "filters"

    gopher_repetition: GopherRepetitionConfig | None = knob(
        factory=GopherRepetitionConfig, doc="Gopher repetition rules."
    )
    gopher_quality: GopherQualityConfig | None = knob(
        factory=GopherQualityConfig, doc="Gopher quality rules."
    )
    c4: C4Config | None = knob(factory=C4Config, doc="C4 rules.")
    fineweb: FineWebConfig | None = knob(factory=FineWebConfig, doc="FineWeb rules.")

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A family given as ``false`` (or None) is left out; a missing one runs with defaults."""
        return {k: None if v is False else v for k, v in data.items()}


def _check(cfg: Any, where: str) -> dict[str, Any]:
    """The config as the dict the Rust side reads, with values checked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        name = f"{where}.{f.name}"
        if f.name in ("top_n_grams", "dup_n_grams"):
            try:
                v = [(int(n), float(x)) for n, x in v]
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected (n, fraction) pairs, got {v!r}") from None
            if any(n < 1 for n, _ in v):
                raise ValueError(f"{name}: n must be >= 1, got {v!r}")
        elif f.name in ("stop_words", "stop_chars"):
            if v is not None:
                if isinstance(v, str) or not all(isinstance(s, str) for s in v):
                    raise TypeError(f"{name}: expected a sequence of str, got {v!r}")
                if f.name == "stop_chars" and any(len(s) != 1 for s in v):
                    raise ValueError(f"{name}: every entry must be one character, got {v!r}")
                v = list(v)
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, (int, float)):
            if v < 0 and v != -1:
                raise ValueError(f"{name}: must be >= 0 (or -1 to disable), got {v!r}")
        else:
            raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
        out[f.name] = v
    return out


class FilterResult(NamedTuple):
    """Per-document results of :func:`quality_filter`, aligned with its input."""

    reasons: list[str | None]
    """Why each document is dropped (datatrove's reason string), None where kept."""
    texts: list[str | None]
    """The kept text where C4 removed lines from it, else None (text unchanged)."""

    @property
    def keep(self) -> list[bool]:
        return [r is None for r in self.reasons]


def _kernel_args(config: QualityFilterConfig | None) -> dict[str, Any]:
    """The checked per-family dicts the Rust chain reads."""
    config = QualityFilterConfig() if config is None else config
    if not isinstance(config, QualityFilterConfig):
        raise TypeError(
            f"quality_filter: config must be a QualityFilterConfig, got {type(config).__name__}"
        )
    kwargs = {}
    for name in _FAMILIES:
        sub = getattr(config, name)
        if sub is not None:
            if not isinstance(sub, _FAMILIES[name]):
                raise TypeError(
                    f"quality_filter: config.{name} must be a {_FAMILIES[name].__name__}"
                )
            kwargs[name] = _check(sub, f"filters.{name}")
    return kwargs


def _run(texts: Any, kwargs: dict[str, Any]) -> tuple[Any, Any, list[tuple[int, str]]]:
    """The chain over ``texts`` (a list of str or a text column): the reasons
    and C4's edited texts as pyarrow string arrays (null where kept /
    unchanged), and ``(row, message)`` of the rows whose filters panicked
    (reason ``internal_error``)."""
    import pyarrow as pa

    reasons, edited, failed = _core.quality_filter(texts, **kwargs)
    return pa.array(reasons), pa.array(edited), failed


def quality_filter(
    texts: Sequence[str] | Any, config: QualityFilterConfig | None = None
) -> FilterResult:
    """Runs the configured filters over ``texts``: a list of str, or an Arrow
    string/binary column (pyarrow Array or ChunkedArray, read in place by
    Rust; invalid UTF-8 in a binary column is replaced with U+FFFD). Nulls
    are dropped with reason ``"null"``; a document the filters fail on (a
    bug) with reason ``"internal_error"``."""
    kwargs = _kernel_args(config)
    if is_arrow(texts):
        col = text_column(texts, "quality_filter: texts")
        r, o, _ = _run(col, kwargs)
        reasons = r.to_pylist()
        for k in null_indices(col):
            reasons[k] = "null"
        return FilterResult(reasons, o.to_pylist())
    texts = _as_list(texts, "quality_filter: texts")
    present = [k for k, t in enumerate(texts) if t is not None]
    reasons: list[str | None] = ["null"] * len(texts)
    out: list[str | None] = [None] * len(texts)
    r, o, _ = _run([texts[k] for k in present], kwargs)
    for k, rk, ok in zip(present, r.to_pylist(), o.to_pylist(), strict=True):
        reasons[k] = rk
        out[k] = ok
    return FilterResult(reasons, out)


def _as_list(texts: Any, where: str) -> list[str | None]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{where}: expected a list of str, got {type(texts).__name__}")
    texts = list(texts)
    for k, t in enumerate(texts):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"{where}[{k}]: expected str, got {type(t).__name__}")
        if t is not None:
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                texts[k] = t.encode("utf-8", "replace").decode("utf-8")
    return texts


def filter_stage(
    table: Any,
    config: QualityFilterConfig | None = None,
    column: str = "text",
    errors: list[str] | None = None,
) -> tuple[Any, dict[str, int]]:
    """The filter stage over a pyarrow Table: (kept rows, with C4's line
    removal applied to ``column``; counts of dropped rows per reason). The
    rows dropped as ``internal_error`` are named in ``errors`` (by ``id``)
    when it is given. Column-wise in Arrow: no per-document Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise ValueError(f"filter_stage: table has no column {column!r}")
    kwargs = _kernel_args(config)
    col = text_column(table.column(column), "filter_stage: texts")
    reasons, edited, failed = _run(col, kwargs)
    if col.null_count:
        reasons = pc.if_else(_combined(pc.is_null(col)), pa.scalar("null", reasons.type), reasons)
    # Only the texts C4 ran on cross back; the others stay in their Arrow buffers.
    if edited.null_count < len(edited):
        new = pc.if_else(pc.is_valid(edited), edited.cast(col.type), col)
        table = table.set_column(table.schema.get_field_index(column), column, new)
    kept = table.filter(pc.is_null(reasons))
    counts = {
        d["values"]: d["counts"] for d in pc.value_counts(reasons.drop_null()).to_pylist()
    }
    if errors is not None:
        errors += internal_errors(table, failed, "quality filter")
    return kept, counts


def _combined(mask: Any) -> Any:
    """A boolean ChunkedArray as one Array (cheap: one bit per row)."""
    return mask.combine_chunks() if hasattr(mask, "combine_chunks") else mask


def internal_errors(table: Any, failed: list[tuple[int, str]], where: str) -> list[str]:
    """Report lines for the rows of ``table`` a kernel failed on:
    ``"<id>: internal_error in <where>: <panic message>"`` (the row number
    where the table has no ``id``)."""
    if not failed:
        return []
    import pyarrow as pa

    rows = [k for k, _ in failed]
    if "id" in table.column_names:
        ids = table.column("id").take(pa.array(rows, pa.int64())).to_pylist()
    else:
        ids = [f"row {k}" for k in rows]
    return [f"{i}: internal_error in {where}: {m}" for i, (_, m) in zip(ids, failed, strict=True)]
