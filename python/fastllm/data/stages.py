"""The per-batch stages and their contract.

A :class:`Stage` takes a ``pyarrow.Table`` (at least ``id``, ``text``,
``source``) and returns the kept rows plus a count per drop reason, and
optionally a third item: report lines naming the documents it dropped as
``internal_error`` (a Rust kernel panicked on them; see
``rust/src/guard.rs``: one policy for every kernel, the document is dropped,
never passed on unprocessed). Stages
are pure functions of the batch (no state across batches), which is what
lets the local engine restart per unit and the Ray engine run them inside
``map_batches``.

``FilterConfig.build()`` makes the configured filter stages, in datatrove's
FineWeb order: length, ``langid``, ``gopher_repetition``, ``gopher_quality``,
``c4``, ``fineweb``, then any plug-ins (``filter.stages =
["module:factory"]``, ``factory()`` returns a Stage); ``PiiSection.build()``
adds ``pii`` (masking; it drops only documents the masker fails on) after
them. The pipeline's chain (extract, these, PII) is
:class:`fastllm.data.pipeline.common.StageChain`. Each quality family is its
own stage, so the report shows its documents in and out, its time and its
drops per datatrove reason string.
FineWeb masks PII after dedup; here it runs before (a per-batch stage that
the local and Ray engines share), so dedup sees masked text.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastllm.config import builder
from fastllm.data.config import ConfigError, FilterConfig, PiiSection

if TYPE_CHECKING:
    from fastllm.data.config import LangIdConfig


@runtime_checkable
class Stage(Protocol):
    """``stage(table) -> (kept table, {reason: dropped documents})``, or
    ``(kept table, counts, [report line per internal error])``."""

    name: str

    def __call__(self, table: pa.Table) -> tuple[Any, ...]: ...


class Extract:
    """HTML (``html`` binary column) → main text (``text``); pages without
    main content are dropped as ``no_main_text``, pages the extractor fails
    on as ``internal_error``. With ``enabled=False`` the
    HTML is decoded as text unchanged (invalid UTF-8 replaced)."""

    name = "extract"

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int], list[str]]:
        if "html" not in table.column_names:
            return table, {}, []
        html = table.column("html")
        if html.num_chunks > 1 and html.nbytes < (1 << 30):
            # One array, so that the extractor spreads the whole batch over
            # its threads (WARC tables come in chunks of a few MB).
            html = html.combine_chunks()
        if self.enabled:
            from fastllm.data.extract import extract_batch

            # WARC inputs carry the page's URL: its TLD helps guess the
            # charset of pages that do not declare one. Arrow, read in place.
            urls = table.column("url") if "url" in table.column_names else None
            res = extract_batch(html, urls)
            text, failed = res.texts, list(res.failures)
        else:
            text = pa.array([b.decode("utf-8", "replace") for b in html.to_pylist()], pa.string())
            failed = []
        out = table.drop_columns(["html"]).append_column("text", text)
        keep = pc.invert(pc.is_null(text))
        kept = out.filter(keep)
        counts = {}
        if no_text := len(out) - len(kept) - len(failed):
            counts["no_main_text"] = no_text
        if failed:
            from fastllm.data.filters import internal_errors

            counts["internal_error"] = len(failed)
            return kept, counts, internal_errors(out, failed, "extract")
        return kept, counts, []


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


class LangId:
    """Language id (:func:`fastllm.data.langid.language_stage`): keeps the
    documents in ``languages`` detected with at least ``min_confidence``;
    drops as ``lang_<code>``, ``lang_unknown``, ``lang_low_confidence``."""

    name = "langid"

    def __init__(self, cfg: LangIdConfig):
        self.languages, self.min_confidence = list(cfg.languages), cfg.min_confidence

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int], list[str]]:
        from fastllm.data.langid import language_stage

        if len(table) == 0:
            return table, {}, []
        errors: list[str] = []
        kept, counts = language_stage(table, self.languages, self.min_confidence, errors=errors)
        # lang / lang_score are not carried further: later stages see the input schema.
        return kept.drop_columns(["lang", "lang_score"]), counts, errors


# The filter family of each quality stage, as :class:`QualityFilterConfig` names it.
FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


def _base(section: Any) -> Any:
    """The filters.py config a ``[filter.<family>]`` section extends, without ``enabled``."""
    base = type(section).__mro__[1]
    return base(**{f.name: getattr(section, f.name) for f in dataclasses.fields(base)})


class Quality:
    """One quality-filter family (:func:`fastllm.data.filters.filter_stage`),
    dropping with datatrove's reason strings; C4 also removes lines from the
    documents it keeps."""

    def __init__(self, family: str, section: Any):
        from fastllm.data.filters import QualityFilterConfig, quality_filter

        self.name = family
        self.config = QualityFilterConfig(**{f: None for f in FAMILIES})
        setattr(self.config, family, _base(section))
        try:  # the kernel's own checks, before any work
            quality_filter([], self.config)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"filter.{family}", str(e)) from None

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int], list[str]]:
        from fastllm.data.filters import filter_stage

        if len(table) == 0:
            return table, {}, []
        errors: list[str] = []
        kept, counts = filter_stage(table, self.config, errors=errors)
        return kept, counts, errors


class Pii:
    """PII masking (:func:`fastllm.data.pii.mask_column`). It fails closed:
    the only documents it drops are those the masker fails on (a bug),
    counted as ``internal_error``; they never go on unmasked."""

    name = "pii"

    def __init__(self, section: PiiSection):
        from fastllm.data.pii import PiiConfig

        # "" in TOML: leave that kind unmasked (None in PiiConfig).
        self.config = PiiConfig(
            **{f.name: getattr(section, f.name) or None for f in dataclasses.fields(PiiConfig)}
        )

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int], list[str]]:
        from fastllm.data.filters import internal_errors
        from fastllm.data.pii import mask_column

        if len(table) == 0:
            return table, {}, []
        masked, failed = mask_column(table.column("text"), self.config)
        out = table.set_column(table.schema.get_field_index("text"), "text", masked)
        if not failed:
            return out, {}, []
        drop = np.zeros(len(table), dtype=bool)
        drop[[k for k, _ in failed]] = True
        kept = out.filter(pa.array(~drop))
        return kept, {"internal_error": len(failed)}, internal_errors(table, failed, "pii")


def load_stage(spec: str) -> Stage:
    """``"package.module:factory"`` → ``factory()``, checked to be a Stage."""
    mod_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError("filter.stages", f"cannot load {spec!r}: {e}") from None
    stage = factory()
    if not isinstance(stage, Stage):
        raise ConfigError(
            "filter.stages",
            f"{spec!r} returned {type(stage).__name__}, not a Stage (a callable with a .name)",
        )
    return stage


@builder(FilterConfig)
def filter_stages(f: FilterConfig) -> list[Stage]:
    """``FilterConfig.build()``: the filter stages ``f`` turns on, in run
    order (none when ``f.enabled`` is false). Loading the plug-ins is part
    of checking the config: a bad one is a ConfigError here."""
    stages: list[Stage] = []
    if f.enabled:
        if f.min_chars or f.max_chars:
            stages.append(LengthFilter(f.min_chars, f.max_chars))
        if f.langid.enabled and f.langid.languages:
            stages.append(LangId(f.langid))
        for family in FAMILIES:
            section = getattr(f, family)
            if section.enabled:
                stages.append(Quality(family, section))
        stages += [load_stage(s) for s in f.stages]
    return stages


@builder(PiiSection)
def pii_stages(pii: PiiSection) -> list[Stage]:
    """``PiiSection.build()``: the PII masking stage, when ``pii.enabled``."""
    return [Pii(pii)] if pii.enabled else []
