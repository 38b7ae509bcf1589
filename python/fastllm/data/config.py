"""``PipelineConfig``: every knob of ``python -m fastllm.data run``, from TOML
plus dotted overrides (``--dedup.threshold 0.9``).

Each section is a dataclass; every field has a default and a one-line doc
(the comment after it). Unknown sections or keys and values of the wrong type
are a :class:`ConfigError` naming the field, raised before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class FilterConfig:
    enabled: bool = True  # run the filter stages at all
    min_chars: int = 0  # drop documents shorter than this many characters
    max_chars: int = 0  # drop documents longer than this (0: no limit)
    stages: list[str] = field(
        default_factory=list
    )  # extra stages, "module:factory" (factory() -> Stage)


@dataclass
class DedupConfig:
    enabled: bool = True  # run deduplication at all
    exact: bool = True  # drop exact duplicates (normalized content hash), first kept
    near: bool = True  # drop MinHash/LSH near duplicates across the whole run
    threshold: float = 0.8  # Jaccard similarity above which documents are near duplicates
    num_perm: int = 128  # MinHash permutations
    ngram: int = 5  # word n-gram shingles
    seed: int = 0  # MinHash seed


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
    "dedup": DedupConfig,
    "tokenizer": TokenizerConfig,
    "run": RunConfig,
}


@dataclass
class PipelineConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
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
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table of keys, got {value!r}")
            section = getattr(cfg, name)
            hints = typing.get_type_hints(type(section))
            for key, v in value.items():
                if key not in hints:
                    known = ", ".join(f.name for f in dataclasses.fields(section))
                    raise ConfigError(f"unknown key {name}.{key} (keys of [{name}]: {known})")
                setattr(section, key, _coerce(f"{name}.{key}", v, hints[key]))
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
        """sha256 (16 hex) of the named sections: what an intermediate depends on."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
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
        section, _, name = key.partition(".")
        if not name or "." in name:
            raise ConfigError(f"{arg!r}: overrides look like --section.key VALUE")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section}: expected a table of keys")
        data[section][name] = _parse_value(value)
    return data
