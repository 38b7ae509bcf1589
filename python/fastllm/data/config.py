"""``PipelineConfig``: every knob of ``python -m fastllm.data run``, from TOML
plus dotted overrides (``--dedup.threshold 0.9``, ``--filter.c4.enabled false``).

Each section is a dataclass; every field has a default and a one-line doc
(the comment after it, or the docstring under it for the quality-filter
thresholds, which are the fields of :mod:`fastllm.data.filters`' configs).
Sections nest (``[filter.gopher_quality]``). Unknown sections or keys and
values of the wrong type are a :class:`ConfigError` naming the field, raised
before any work starts.

TOML has no null: an optional threshold (``float | None`` in the filter
configs) is turned off with 0, a PII placeholder with ``""``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastllm.data.filters import (
    C4Config,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from fastllm.data.pii import PiiConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad configuration; the message names the field (``dedup.threshold``)."""


@dataclass
class InputConfig:
    paths: list[str] = field(default_factory=list)  # files or directories, read in sorted order
    text_field: str = "text"  # JSONL key / Parquet column holding the document text
    batch_size: int = 1024  # documents per Arrow batch through the stages
    html_pages_per_unit: int = 256  # HTML files of a directory grouped per restartable unit


@dataclass
class OutputConfig:
    dir: str = ""  # output directory: shards/, work/, report.json, tokenizer.json
    max_shard_bytes: int = 1 << 30  # cap on one shard's .bin (a longer document gets its own)
    prefix: str = "shard"  # shard file name prefix


# The quality-filter sections: each is the filter family's own config (every
# threshold, datatrove's defaults) plus ``enabled``. They run in datatrove's
# FineWeb order: langid, Gopher repetition, Gopher quality, C4, FineWeb.
@dataclass
class LangIdConfig:
    enabled: bool = True  # run language id (only does anything when languages is set)
    languages: list[str] = field(default_factory=list)  # keep these ISO 639-1 codes; empty: off
    min_confidence: float = 0.0  # drop documents detected with less confidence, in [0, 1]


@dataclass
class GopherRepetitionSection(GopherRepetitionConfig):
    enabled: bool = True  # run the Gopher repetition rules


@dataclass
class GopherQualitySection(GopherQualityConfig):
    enabled: bool = True  # run the Gopher quality rules


@dataclass
class C4Section(C4Config):
    # FineWeb's recipe keeps lines without terminal punctuation (C4's own default drops them).
    filter_no_terminal_punct: bool = False
    enabled: bool = True  # run the C4 rules (kept documents lose the lines C4 drops)


@dataclass
class FineWebSection(FineWebConfig):
    enabled: bool = True  # run the FineWeb rules


@dataclass
class FilterConfig:
    enabled: bool = True  # run the filter stages at all (every one below)
    min_chars: int = 0  # drop documents shorter than this many characters
    max_chars: int = 0  # drop documents longer than this (0: no limit)
    langid: LangIdConfig = field(default_factory=LangIdConfig)  # [filter.langid]
    gopher_repetition: GopherRepetitionSection = field(default_factory=GopherRepetitionSection)
    gopher_quality: GopherQualitySection = field(default_factory=GopherQualitySection)
    c4: C4Section = field(default_factory=C4Section)
    fineweb: FineWebSection = field(default_factory=FineWebSection)
    stages: list[str] = field(
        default_factory=list
    )  # extra stages after the built-in ones, "module:factory" (factory() -> Stage)


@dataclass
class PiiSection(PiiConfig):
    """Placeholders per kind of PII ("" leaves that kind unmasked)."""

    enabled: bool = True  # mask PII in kept documents (after the filters, before dedup)


@dataclass
class DedupConfig:
    enabled: bool = True  # run deduplication at all
    exact: bool = True  # drop exact duplicates (normalized content hash), first kept
    near: bool = True  # drop MinHash/LSH near duplicates across the whole run
    threshold: float = 0.8  # Jaccard similarity above which documents are near duplicates
    num_perm: int = 128  # MinHash permutations
    ngram: int = 5  # word n-gram shingles
    seed: int = 0  # MinHash seed
    # local engine: "memory" (LSH over all signatures in RAM) or "disk" (out of core in
    # work/, resumable); --engine ray always shuffles band keys through Ray
    mode: str = "memory"


@dataclass
class TokenizerConfig:
    path: str = ""  # HF tokenizer.json to encode with; empty: train one (train_vocab_size)
    train_vocab_size: int = 0  # when path is empty, train a BPE of this size in the run
    train_sample_docs: int = 10_000  # documents (the first kept ones) to train on


@dataclass
class RunConfig:
    engine: str = "local"  # "local" (restartable, this process) or "ray" (Ray Data)
    force: bool = False  # redo everything, ignoring finished outputs
    progress: bool = True  # show progress bars
    extract: bool = True  # run HTML extraction on HTML inputs (off: keep raw HTML as text)
    num_cpus: int = 0  # Ray only: CPUs for a local Ray instance (0: Ray's default)


SECTIONS: dict[str, type] = {
    "input": InputConfig,
    "output": OutputConfig,
    "filter": FilterConfig,
    "pii": PiiSection,
    "dedup": DedupConfig,
    "tokenizer": TokenizerConfig,
    "run": RunConfig,
}


@dataclass
class PipelineConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    pii: PiiSection = field(default_factory=PiiSection)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None):
        """A TOML file (or the defaults) with dotted overrides applied, checked."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                with open(path, "rb") as f:
                    data = tomllib.load(f)
            except FileNotFoundError:
                raise ConfigError(f"{path}: config file not found") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{path}: not valid TOML: {e}") from None
        cfg = cls.from_dict(apply_overrides(data, overrides or []))
        cfg.check()
        return cfg

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        cfg = cls()
        for name, value in data.items():
            if name not in SECTIONS:
                raise ConfigError(f"unknown section {name!r} (sections: {', '.join(SECTIONS)})")
            _fill(getattr(cfg, name), name, value)
        return cfg

    def check(self) -> None:
        """Value checks that types alone cannot express; each names its field."""

        def need(ok: bool, name: str, msg: str) -> None:
            if not ok:
                raise ConfigError(f"{name}: {msg}")

        need(self.input.batch_size >= 1, "input.batch_size", "must be >= 1")
        need(self.input.html_pages_per_unit >= 1, "input.html_pages_per_unit", "must be >= 1")
        need(self.output.max_shard_bytes >= 1, "output.max_shard_bytes", "must be >= 1")
        need(bool(self.output.prefix), "output.prefix", "must not be empty")
        need(self.filter.min_chars >= 0, "filter.min_chars", "must be >= 0")
        need(self.filter.max_chars >= 0, "filter.max_chars", "must be >= 0 (0: no limit)")
        need(
            not self.filter.max_chars or self.filter.max_chars >= self.filter.min_chars,
            "filter.max_chars",
            f"must be >= filter.min_chars ({self.filter.min_chars})",
        )
        _check_filters(self.filter, need)
        need(
            self.dedup.mode in ("memory", "disk"),
            "dedup.mode",
            f"{self.dedup.mode!r} is not memory or disk",
        )
        need(0 < self.dedup.threshold <= 1, "dedup.threshold", "must be in (0, 1]")
        need(2 <= self.dedup.num_perm <= 4096, "dedup.num_perm", "must be in [2, 4096]")
        need(self.dedup.ngram >= 1, "dedup.ngram", "must be >= 1")
        need(0 <= self.dedup.seed < 2**64, "dedup.seed", "must be in [0, 2**64)")
        need(
            self.run.engine in ("local", "ray"),
            "run.engine",
            f"{self.run.engine!r} is not local or ray",
        )
        need(self.run.num_cpus >= 0, "run.num_cpus", "must be >= 0")
        need(
            bool(self.tokenizer.path) or self.tokenizer.train_vocab_size > 0,
            "tokenizer.path",
            "required (--tokenizer FILE), or set tokenizer.train_vocab_size to train one",
        )
        need(
            self.tokenizer.train_vocab_size == 0 or self.tokenizer.train_vocab_size >= 257,
            "tokenizer.train_vocab_size",
            "must be >= 257 (256 bytes + <|endoftext|>) or 0",
        )
        need(self.tokenizer.train_sample_docs >= 1, "tokenizer.train_sample_docs", "must be >= 1")
        if self.tokenizer.path:
            need(
                Path(self.tokenizer.path).is_file(),
                "tokenizer.path",
                f"{self.tokenizer.path}: no such file",
            )
        need(bool(self.input.paths), "input.paths", "no inputs (--input PATH)")
        for i, p in enumerate(self.input.paths):
            need(Path(p).exists(), f"input.paths[{i}]", f"{p}: no such file or directory")
        need(bool(self.output.dir), "output.dir", "required (--output DIR)")
        for i, spec in enumerate(self.filter.stages):
            need(
                spec.count(":") == 1 and all(spec.split(":")),
                f"filter.stages[{i}]",
                f"{spec!r} is not 'module:factory'",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str) -> str:
        """sha256 (16 hex) of the named sections: what an intermediate depends on.
        ``dedup.mode`` is left out: both modes give the same result."""
        d = self.to_dict()
        if "dedup" in d:
            d["dedup"] = {k: v for k, v in d["dedup"].items() if k != "mode"}
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# C4's integer rules are turned off with -1 (datatrove's convention).
_MINUS_ONE_OFF = {"min_num_sentences", "min_words_per_line", "max_word_length"}


def _check_filters(f: FilterConfig, need) -> None:
    """Ranges of the quality-filter thresholds (their types are checked on load)."""
    need(
        0.0 <= f.langid.min_confidence <= 1.0,
        "filter.langid.min_confidence",
        "must be in [0, 1]",
    )
    for i, code in enumerate(f.langid.languages):
        need(bool(code.strip()), f"filter.langid.languages[{i}]", "must not be empty")
    for family in ("gopher_repetition", "gopher_quality", "c4", "fineweb"):
        sec = getattr(f, family)
        for fd in dataclasses.fields(sec):
            v, name = getattr(sec, fd.name), f"filter.{family}.{fd.name}"
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, float)):
                if fd.name in _MINUS_ONE_OFF:
                    need(v >= -1, name, "must be >= 0 (or -1 to disable)")
                else:
                    need(v >= 0, name, "must be >= 0 (0 disables an optional rule)")
            elif fd.name in ("top_n_grams", "dup_n_grams"):
                for k, (n, frac) in enumerate(v):
                    need(n >= 1 and frac >= 0, f"{name}[{k}]", "must be [n >= 1, fraction >= 0]")
            elif fd.name == "stop_chars":
                for k, c in enumerate(v):
                    need(len(c) == 1, f"{name}[{k}]", f"{c!r} is not one character")


def _fill(section: Any, name: str, value: Any) -> None:
    """Set the keys of table ``value`` on dataclass ``section`` (``[name]``),
    recursing into nested sections."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table of keys, got {value!r}")
    hints = typing.get_type_hints(type(section))
    for key, v in value.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(section))
            raise ConfigError(f"unknown key {name}.{key} (keys of [{name}]: {known})")
        if dataclasses.is_dataclass(hints[key]):
            _fill(getattr(section, key), f"{name}.{key}", v)
        else:
            setattr(section, key, _coerce(f"{name}.{key}", v, hints[key]))


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: TOML has no null
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(name, value, inner)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} items, got {value!r}")
        return tuple(
            _coerce(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):  # a single override value: --input.paths a.jsonl
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported field type {hint}")  # pragma: no cover


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string: --output.dir out/web


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``["--dedup.threshold", "0.9", "--run.force=true", ...]`` to ``data``."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or "." not in arg:
            raise ConfigError(f"{arg!r}: overrides look like --section.key VALUE")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            if i + 1 >= len(overrides):
                raise ConfigError(f"{arg}: missing value")
            value = overrides[i + 1]
            i += 1
        i += 1
        *path, name = key.split(".")
        if not name or not all(path):
            raise ConfigError(f"{arg!r}: overrides look like --section.key VALUE")
        table = data
        for depth, part in enumerate(path):
            # Copy nested tables on the way down: ``data`` is the caller's.
            sub = table.get(part, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{'.'.join(path[: depth + 1])}: expected a table of keys")
            table[part] = dict(sub)
            table = table[part]
        table[name] = _parse_value(value)
    return data
