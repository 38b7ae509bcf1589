"""``PipelineConfig``: every knob of ``python -m fastllm.data run``, from TOML
plus dotted overrides (``--dedup.threshold 0.9``, ``--filter.c4.enabled false``).

Each table is a section of :mod:`fastllm.config`: every field a knob with a
default and a one-line doc (``python -m fastllm.data run --describe``).
Sections nest (``[filter.gopher_quality]``: the quality-filter families are
the configs of :mod:`fastllm.data.filters` plus ``enabled``). Unknown
sections or keys, values of the wrong type or out of range are a
:class:`~fastllm.config.ConfigError` naming the field, raised by ``load``
before any work starts (the checks that look at the file system, such as
inputs that must exist, are :meth:`PipelineConfig.check`, which ``load`` and
:func:`fastllm.data.pipeline.run` call).

``build()`` constructs what a section describes; the modules that
implement it register the builders (:func:`fastllm.config.builder`), so
this module imports none of them: ``PipelineConfig.build()`` (the engine,
:mod:`fastllm.data.pipeline`, imported with :mod:`fastllm.data`),
``FilterConfig.build()`` and ``PiiSection.build()`` (the stages,
:mod:`fastllm.data.stages`), ``DedupConfig.build()`` (a dedup stage,
:mod:`fastllm.data.dedup`).

TOML has no null: an optional threshold (``float | None`` in the filter
configs) is turned off with 0 (or ``none`` on the command line), a PII
placeholder with ``""``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastllm.config import ConfigError, Section, check, knob, section
from fastllm.data.filters import (
    C4Config,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from fastllm.data.pii import PiiConfig

__all__ = ["ConfigError", "PipelineConfig"]


@dataclass
class InputConfig(Section):
    """What the pipeline reads (the ``[input]`` table)."""

    paths: list[str] = knob(factory=list, doc="files or directories, read in sorted order")
    text_field: str = knob("text", "JSONL key / Parquet column holding the document text")
    batch_size: int = knob(1024, "documents per Arrow batch through the stages")
    html_pages_per_unit: int = knob(256, "HTML files of a directory grouped per restartable unit")

    def validate(self) -> None:
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.html_pages_per_unit >= 1, "html_pages_per_unit", "must be >= 1")


@dataclass
class OutputConfig(Section):
    """Where the pipeline writes (the ``[output]`` table)."""

    dir: str = knob("", "output directory: shards/, work/, report.json, tokenizer.json")
    max_shard_bytes: int = knob(1 << 30, "cap on one shard's .bin (a longer document gets its own)")
    prefix: str = knob("shard", "shard file name prefix")
    val_every: int = knob(
        0,
        "hold out every N-th kept document (in input order) as a validation shard set "
        "in val_shards/; 0: no validation split",
    )

    def validate(self) -> None:
        check(self.max_shard_bytes >= 1, "max_shard_bytes", "must be >= 1")
        check(bool(self.prefix), "prefix", "must not be empty")
        check(self.val_every == 0 or self.val_every >= 2, "val_every", "must be 0 (off) or >= 2")


# The quality-filter sections: each is the filter family's own config (every
# threshold, datatrove's defaults) plus ``enabled``. They run in datatrove's
# FineWeb order: langid, Gopher repetition, Gopher quality, C4, FineWeb.
@dataclass
class LangIdConfig(Section):
    """Language identification (embedded whatlang)."""

    enabled: bool = knob(True, "run language id (only does anything when languages is set)")
    languages: list[str] = knob(factory=list, doc="keep these ISO 639-1 codes; empty: off")
    min_confidence: float = knob(0.0, "drop documents detected with less confidence, in [0, 1]")

    def validate(self) -> None:
        check(0.0 <= self.min_confidence <= 1.0, "min_confidence", "must be in [0, 1]")
        for i, code in enumerate(self.languages):
            check(bool(code.strip()), f"languages[{i}]", "must not be empty")


@dataclass
class GopherRepetitionSection(GopherRepetitionConfig):
    """Gopher repetition rules (Rae et al. 2021, table A1)."""

    enabled: bool = knob(True, "run the Gopher repetition rules")


@dataclass
class GopherQualitySection(GopherQualityConfig):
    """Gopher quality rules (Rae et al. 2021)."""

    enabled: bool = knob(True, "run the Gopher quality rules")


@dataclass
class C4Section(C4Config):
    """C4 rules (Raffel et al. 2020) as datatrove implements them."""

    filter_no_terminal_punct: bool = knob(
        False,
        "drop lines not ending in terminal punctuation (FineWeb's recipe keeps them; C4's own default drops)",
    )
    enabled: bool = knob(True, "run the C4 rules (kept documents lose the lines C4 drops)")


@dataclass
class FineWebSection(FineWebConfig):
    """FineWeb quality rules (Penedo et al. 2024)."""

    enabled: bool = knob(True, "run the FineWeb rules")


@dataclass
class FilterConfig(Section):
    """The filter stages (the ``[filter]`` table)."""

    enabled: bool = knob(True, "run the filter stages at all (every one below)")
    min_chars: int = knob(0, "drop documents shorter than this many characters")
    max_chars: int = knob(0, "drop documents longer than this (0: no limit)")
    langid: LangIdConfig = section(LangIdConfig)
    gopher_repetition: GopherRepetitionSection = section(GopherRepetitionSection)
    gopher_quality: GopherQualitySection = section(GopherQualitySection)
    c4: C4Section = section(C4Section)
    fineweb: FineWebSection = section(FineWebSection)
    stages: list[str] = knob(
        factory=list,
        doc='extra stages after the built-in ones, "module:factory" (factory() -> Stage)',
    )

    def validate(self) -> None:
        check(self.min_chars >= 0, "min_chars", "must be >= 0")
        check(self.max_chars >= 0, "max_chars", "must be >= 0 (0: no limit)")
        check(
            not self.max_chars or self.max_chars >= self.min_chars,
            "max_chars",
            f"must be >= filter.min_chars ({self.min_chars})",
        )
        for i, spec in enumerate(self.stages):
            check(
                spec.count(":") == 1 and all(spec.split(":")),
                f"stages[{i}]",
                f"{spec!r} is not 'module:factory'",
            )


@dataclass
class PiiSection(PiiConfig):
    """PII masking: placeholders per kind ("" leaves that kind unmasked)."""

    enabled: bool = knob(True, "mask PII in kept documents (after the filters, before dedup)")


@dataclass
class DedupConfig(Section):
    """Exact and near-duplicate removal (the ``[dedup]`` table)."""

    table = "dedup"

    enabled: bool = knob(True, "run deduplication at all")
    exact: bool = knob(True, "drop exact duplicates (normalized content hash), first kept")
    near: bool = knob(True, "drop MinHash/LSH near duplicates across the whole run")
    threshold: float = knob(0.8, "Jaccard similarity above which documents are near duplicates")
    num_perm: int = knob(128, "MinHash permutations")
    ngram: int = knob(5, "word n-gram shingles")
    seed: int = knob(0, "MinHash seed")
    mode: Literal["memory", "disk"] = knob(
        "memory",
        "local engine: memory (LSH over all signatures in RAM) or disk (out of core in "
        "work/, resumable); --engine ray always shuffles band keys through Ray",
    )
    verify: Literal["exact", "signature", "none"] = knob(
        "exact",
        "how LSH candidate pairs are confirmed: exact (shingle-set Jaccard of the two texts "
        ">= threshold), signature (MinHash agreement >= threshold) or none",
    )
    bands: int = knob(0, "LSH bands (with rows); 0: chosen from threshold and num_perm")
    rows: int = knob(0, "LSH rows per band (with bands); 0: chosen from threshold and num_perm")

    def validate(self) -> None:
        # Literal types are checked on load; these catch a config built in code.
        check(
            self.verify in ("exact", "signature", "none"),
            "verify",
            f'must be "exact", "signature" or "none", got {self.verify!r}',
        )
        check(self.mode in ("memory", "disk"), "mode", f'must be "memory" or "disk", got {self.mode!r}')
        check(0 < self.threshold <= 1, "threshold", f"must be in (0, 1], got {self.threshold}")
        check(2 <= self.num_perm <= 4096, "num_perm", f"must be in [2, 4096], got {self.num_perm}")
        check(self.ngram >= 1, "ngram", f"must be >= 1, got {self.ngram}")
        check(0 <= self.seed < 2**64, "seed", f"must be in [0, 2**64), got {self.seed}")
        check(
            (self.bands == 0) == (self.rows == 0),
            "bands",
            "bands and rows must be given together (or neither)",
        )
        check(self.bands >= 0 and self.rows >= 0, "bands", "bands and rows must be >= 0")
        check(
            self.bands * self.rows <= self.num_perm,
            "bands",
            f"bands * rows must be <= num_perm ({self.num_perm}), got {self.bands} * {self.rows}",
        )


@dataclass
class TokenizerConfig(Section):
    """The tokenizer the shards are written with (the ``[tokenizer]`` table)."""

    path: str = knob("", "HF tokenizer.json to encode with; empty: train one (train_vocab_size)")
    train_vocab_size: int = knob(0, "when path is empty, train a BPE of this size in the run")
    train_sample_docs: int = knob(10_000, "documents (the first kept ones) to train on")

    def validate(self) -> None:
        check(
            self.train_vocab_size == 0 or self.train_vocab_size >= 257,
            "train_vocab_size",
            "must be >= 257 (256 bytes + <|endoftext|>) or 0",
        )
        check(self.train_sample_docs >= 1, "train_sample_docs", "must be >= 1")


@dataclass
class RunConfig(Section):
    """How the pipeline runs (the ``[run]`` table)."""

    engine: Literal["local", "ray"] = knob("local", "local (restartable, this process) or ray (Ray Data)")
    force: bool = knob(False, "redo everything, ignoring finished outputs")
    progress: bool = knob(True, "show progress bars")
    extract: bool = knob(True, "run HTML extraction on HTML inputs (off: keep raw HTML as text)")
    num_cpus: int = knob(0, "Ray only: CPUs for a local Ray instance (0: Ray's default)")

    def validate(self) -> None:
        check(self.num_cpus >= 0, "num_cpus", "must be >= 0")


@dataclass
class PipelineConfig(Section):
    """A whole pipeline run: inputs, stages, outputs."""

    input: InputConfig = section(InputConfig)
    output: OutputConfig = section(OutputConfig)
    filter: FilterConfig = section(FilterConfig)
    pii: PiiSection = section(PiiSection)
    dedup: DedupConfig = section(DedupConfig)
    tokenizer: TokenizerConfig = section(TokenizerConfig)
    run: RunConfig = section(RunConfig)

    @classmethod
    def load(cls, file=None, overrides=()) -> PipelineConfig:  # type: ignore[override]
        """A TOML file (or the defaults) with dotted overrides applied, checked
        (:meth:`check` included)."""
        cfg = super().load(file, overrides)
        cfg.check()
        return cfg

    def check(self) -> None:
        """What a run needs beyond valid values: inputs that exist, an output
        directory, a tokenizer file or a vocabulary size to train one."""
        check(
            bool(self.tokenizer.path) or self.tokenizer.train_vocab_size > 0,
            "tokenizer.path",
            "required (--tokenizer FILE), or set tokenizer.train_vocab_size to train one",
        )
        if self.tokenizer.path:
            check(
                Path(self.tokenizer.path).is_file(),
                "tokenizer.path",
                f"{self.tokenizer.path}: no such file",
            )
        check(bool(self.input.paths), "input.paths", "no inputs (--input PATH)")
        for i, p in enumerate(self.input.paths):
            check(Path(p).exists(), f"input.paths[{i}]", f"{p}: no such file or directory")
        check(bool(self.output.dir), "output.dir", "required (--output DIR)")

    def fingerprint(self, *sections: str) -> str:
        """sha256 (16 hex) of the named sections: what an intermediate depends on.
        ``dedup.mode`` is left out: both modes give the same result."""
        d = self.to_dict()
        if "dedup" in d:
            d["dedup"] = {k: v for k, v in d["dedup"].items() if k != "mode"}
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
