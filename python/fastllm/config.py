"""One config mechanism for every command line: typed nested dataclasses,
loaded from TOML plus dotted overrides at any depth, checked before any work.

A *section* is a dataclass deriving from :class:`Section`; every field is a
:func:`knob` with a default and a one-line doc, or a nested section (a TOML
table ``[filter.c4]``). A run config is a root section whose fields are the
top-level tables (``TrainConfig``: ``[model]``, ``[optim]``, ...)::

    cfg = TrainConfig.load("configs/tiny.toml", ["--train.steps", "50", "--optim.name=muon"])
    print(TrainConfig.describe())        # every knob: default and doc

Types are checked on load (``bool``, ``int``, ``float``, ``str``, ``Literal``
choices, ``X | None``, ``list``/``tuple``, ``dict[str, X]``, nested sections);
an int is accepted for a float and a list for a tuple. Values are checked by
each section's :meth:`Section.validate`, which runs at construction (so a
section built in code is checked too). Every problem is one
:class:`ConfigError` whose message starts with the dotted field
(``filter.c4.min_words_per_line: ...``).

Sections that construct something have ``build(...)``. Where the object
lives in another module than its config (the decoder, the pipeline), that
module registers its builder with :func:`builder`, so that a config module
never imports what it builds (no import cycle).

Packages add sections to a root without editing a central list:
``TrainConfig.register("post.dpo", DpoConfig)`` (then ``[post.dpo]`` in
TOML, ``--post.dpo.beta 0.2`` on the command line, ``cfg.post.dpo`` in
code).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

T = TypeVar("T")
S = TypeVar("S", bound="Section")


class ConfigError(ValueError):
    """A bad configuration. ``path`` is the dotted field (``dedup.threshold``),
    empty for the config as a whole; the message starts with it."""

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error for a section that sits at ``prefix``."""
        if not prefix:
            return self
        return ConfigError(f"{prefix}.{self.path}" if self.path else prefix, self.message)


def knob(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Any = None) -> Any:
    """A config field: its default (or a ``factory`` for mutable ones) and a one-line doc."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def section(cls: type, doc: str = "") -> Any:
    """A nested section field, defaulting to ``cls()``. The default is built
    unchecked (a section may require a field that only its parent's command
    line gives); the parent checks it when it is built, under its path."""

    def default() -> Any:
        _unchecked[0] += 1
        try:
            return cls()
        finally:
            _unchecked[0] -= 1

    return dataclasses.field(default_factory=default, metadata={"doc": doc})


def check(ok: bool, path: str, message: str) -> None:
    """Raise ``ConfigError(path, message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(path, message)


def builder(section_cls: type[S]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: ``fn(section, *args)`` builds what ``section_cls`` describes;
    ``section.build(*args)`` calls it. Used by the module that implements the
    object, so the config module does not import it."""

    def register(fn: Callable[..., T]) -> Callable[..., T]:
        section_cls._builder = staticmethod(fn)  # type: ignore[attr-defined]
        return fn

    return register


_loading = [0]  # > 0 while _make builds sections (their paths are set by the loader)
_unchecked = [0]  # > 0 while a section field's default is built (checked by its parent)


class Section:
    """Base of config dataclasses. Subclasses are ``@dataclass``es whose
    fields are :func:`knob` s or nested sections; they override
    :meth:`validate` (never ``__post_init__``).

    ``table`` is the section's usual table name (``"model"``): errors of a
    section built on its own in code name their field under it
    (``ModelConfig(dim=0)``: ``model.dim: ...``); a loaded section's errors
    name the path it was loaded at."""

    table: ClassVar[str] = ""
    _builder: ClassVar[Callable[..., Any] | None] = None
    _extensions: ClassVar[dict[str, type]]

    def __post_init__(self) -> None:
        if _unchecked[0]:
            return
        if _loading[0]:
            self.validate()  # values were coerced by the loader
            return
        try:
            self._check_choices()
            self._check_children()
            self.validate()
        except ConfigError as e:
            raise e.under(self.table) from None

    def _check_children(self) -> None:
        """Sections left at their (unchecked) defaults are checked here."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            child = getattr(self, f.name)
            if isinstance(child, Section):
                try:
                    child._check_children()
                    child.validate()
                except ConfigError as e:
                    raise e.under(f.name) from None

    def _check_choices(self) -> None:
        """Fields typed ``Literal[...]`` hold one of their choices (a section
        built in code; the loader checks every type while it reads)."""
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            hint = hints.get(f.name)
            args = typing.get_args(hint)
            if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
                if getattr(self, f.name) is None:
                    continue
                hint = next(a for a in args if a is not type(None))
            if typing.get_origin(hint) is typing.Literal:
                choices = typing.get_args(hint)
                value = getattr(self, f.name)
                check(
                    value in choices,
                    f.name,
                    f"must be one of {', '.join(map(str, choices))}, got {value!r}",
                )

    def validate(self) -> None:
        """Value checks that types cannot express; raise :class:`ConfigError`
        with the field's name relative to this section (``check(...)``)."""

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """The object this section describes (see :func:`builder`)."""
        fn = type(self)._builder
        if fn is None:
            raise TypeError(f"{type(self).__name__} has no builder")
        return fn(self, *args, **kwargs)

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: rewrite a table before it is read (``[model] size = "1B"``)."""
        return data

    # ---- extension sections -------------------------------------------------
    @classmethod
    def register(cls, name: str, section_cls: type) -> type:
        """Add the section ``section_cls`` under ``name`` (dotted: ``post.dpo``)
        to every config of class ``cls`` loaded from now on."""
        if "_extensions" not in cls.__dict__:
            cls._extensions = {}
        head = name.split(".")[0]
        if head in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            raise ValueError(f"{cls.__name__}.register: {head!r} is a field already")
        cls._extensions[name] = section_cls
        return section_cls

    @classmethod
    def extensions(cls) -> dict[str, type]:
        out: dict[str, type] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("_extensions", {}))
        return out

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the extension sections.
        ext = self.__dict__.get("_ext")
        if ext is not None and name in ext:
            return ext[name]
        raise AttributeError(f"{type(self).__name__} has no section or field {name!r}")

    # ---- loading --------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any], path: str | None = None) -> S:
        """From plain values (a parsed TOML document, a JSON dump); unknown keys
        and wrong types are errors naming the dotted field under ``path``
        (default: the section's ``table``)."""
        return _make(cls, data, cls.table if path is None else path, None)

    @classmethod
    def load(
        cls: type[S], file: str | Path | None = None, overrides: Sequence[str] = ()
    ) -> S:
        """A TOML file (or the defaults) with ``--dotted.key VALUE`` overrides applied."""
        return cls.from_dict(apply_overrides(read_toml(file) if file else {}, overrides))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, extension sections included; ``from_dict`` of it is equal."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Section) else _plain(v)
        for name, v in self.__dict__.get("_ext", {}).items():
            out[name] = v.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self: S, **changes: Any) -> S:
        """A copy with fields changed (checked again); extension sections kept."""
        new = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        if "_ext" in self.__dict__:
            object.__setattr__(new, "_ext", self.__dict__["_ext"])
        return new

    @classmethod
    def describe(cls, prefix: str = "") -> str:
        """Every knob, TOML-like: ``[table]`` headers, ``name = default  # doc``."""
        return "\n".join(_describe(cls, prefix)).rstrip() + "\n"


class Group(Section):
    """The sections registered under one dotted prefix (``post`` of ``post.dpo``)."""

    def __init__(self, children: dict[str, Any]) -> None:
        self.__dict__["_ext"] = children

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in self.__dict__["_ext"].items()}

    def __repr__(self) -> str:
        return f"Group({self.__dict__['_ext']!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and self.__dict__["_ext"] == other.__dict__["_ext"]


# ---- reading values --------------------------------------------------------------
def read_toml(file: str | Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"{file}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError("", f"{file}: is a directory, not a TOML config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{file}: not valid TOML: {e}") from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Section)


def _section_of(hint: Any) -> tuple[type | None, bool]:
    """(the section class in ``hint``, whether None is allowed) — or (None, _)."""
    if _is_section(hint):
        return hint, False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        secs = [a for a in args if _is_section(a)]
        if len(secs) == 1 and len(args) == 2 and type(None) in args:
            return secs[0], True
    return None, False


def _hints(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("_hints_cache")
    if cached is None:
        cached = typing.get_type_hints(cls)
        cls._hints_cache = cached  # type: ignore[attr-defined]
    return cached


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _groups(ext: dict[str, type]) -> dict[str, Any]:
    """``{"post.dpo": X, "post.sft": Y, "eval": Z}`` → ``{"post": {"dpo": X, "sft": Y}, "eval": Z}``."""
    tree: dict[str, Any] = {}
    for name, cls in ext.items():
        node = tree
        *parents, last = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = cls
    return tree


def _make_ext(tree: Any, data: Any, path: str) -> Any:
    if isinstance(tree, dict):
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"expected a table of sections, got {data!r}")
        for key in data:
            if key not in tree:
                raise ConfigError(
                    _join(path, key), f"unknown section (sections of [{path}]: {', '.join(tree)})"
                )
        return Group({k: _make_ext(sub, data.get(k, {}), _join(path, k)) for k, sub in tree.items()})
    return _make(tree, data, path, None)


def _make(cls: type[S], data: Any, path: str, base: S | None) -> S:
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a table of keys, got {data!r}")
    try:
        data = cls.prepare(dict(data))
    except ConfigError as e:
        raise e.under(path) from None
    if base is not None and type(base) is not cls:
        base = None
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    ext_tree = _groups(cls.extensions()) if issubclass(cls, Section) else {}
    kwargs: dict[str, Any] = {}
    ext_data: dict[str, Any] = {}
    for key, value in data.items():
        sub = _join(path, key)
        if key in fields:
            sec, optional = _section_of(hints[key])
            if sec is not None and not (optional and value is None):
                current = getattr(base, key) if base is not None else _default(fields[key])
                kwargs[key] = _make(
                    sec, value, sub, current if isinstance(current, sec) else None
                )
            else:
                kwargs[key] = coerce(value, hints[key], sub)
        elif key in ext_tree:
            ext_data[key] = value
        else:
            known = list(fields) + list(ext_tree)
            if path:
                raise ConfigError(sub, f"unknown key (keys of [{path}]: {', '.join(known)})")
            raise ConfigError(sub, f"unknown section (sections: {', '.join(known)})")
    if base is None:  # sections the data leaves out are built (and checked) at their path
        for key, f in fields.items():
            if key not in kwargs:
                sec, _ = _section_of(hints[key])
                current = _default(f)
                if sec is not None and isinstance(current, sec):
                    kwargs[key] = _make(sec, {}, _join(path, key), current)
    _loading[0] += 1
    try:
        obj = dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as e:
        raise e.under(path) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(path, str(e)) from None
    finally:
        _loading[0] -= 1
    if ext_tree:
        ext = {k: _make_ext(t, ext_data.get(k, {}), _join(path, k)) for k, t in ext_tree.items()}
        object.__setattr__(obj, "_ext", ext)
    try:
        if ext_tree:
            obj.validate()  # cross-section checks may read the extensions
    except ConfigError as e:
        raise e.under(path) from None
    return obj


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


_NONE_WORDS = ("none", "null")


class Raw(str):
    """A value as typed on the command line, read by the type of its field:
    ``--output.dir 123`` is the string "123", ``--train.steps 123`` the int."""


def coerce(value: Any, hint: Any, path: str) -> Any:
    """``value`` as type ``hint``, or a ConfigError naming ``path``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(value, Raw) and origin not in (typing.Union, types.UnionType):
        parsed = parse_value(value)
        if hint is str or (origin is typing.Literal and all(isinstance(a, str) for a in args)):
            value = parsed if isinstance(parsed, str) else str(value)
        else:
            value = parsed
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        # TOML has no null: "none" on the command line (for a non-string field).
        if (
            isinstance(value, str)
            and value.lower() in _NONE_WORDS
            and len(inner) < len(args)
            and str not in inner
        ):
            return None
        errors = []
        for a in inner:
            try:
                return coerce(value, a, path)
            except ConfigError as e:
                errors.append(e.message)
        raise ConfigError(path, " or ".join(errors) if len(errors) == 1 else
                          f"expected {' or '.join(_type_name(a) for a in inner)}, got {value!r}")
    if value is None:
        raise ConfigError(path, f"expected {_type_name(hint)}, got none")
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ConfigError(
                path, f"expected one of {', '.join(map(str, args))}, got {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(path, f"expected {len(args)} items, got {value!r}")
        return tuple(
            coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is list:
        (item,) = args
        if isinstance(value, str) and item is str:  # one override value: --input.paths a.jsonl
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        return [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_t, val_t = args
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a table, got {value!r}")
        return {coerce(k, key_t, path): coerce(v, val_t, _join(path, k)) for k, v in value.items()}
    if _is_section(hint):
        if isinstance(value, hint):
            return value
        return _make(hint, value, path, None)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    if hint is Any:
        return value
    raise ConfigError(path, f"unsupported field type {hint}")  # pragma: no cover


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


# ---- overrides ---------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A command-line value as TOML reads it (``200``, ``1e-3``, ``true``,
    ``[1, 2]``, ``"x"``); anything else is a plain string (``out/web``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` (not modified) with ``--a.b.c VALUE`` / ``--a.b.c=VALUE`` applied, at any depth."""
    out = _copy_tables(data)
    i = 0
    overrides = list(overrides)
    while i < len(overrides):
        arg = overrides[i]
        key, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or "." not in key:
            raise ConfigError("", f"{arg!r}: overrides look like --section.key VALUE")
        if not eq:
            if i + 1 >= len(overrides):
                raise ConfigError(key, "missing value")
            value = overrides[i + 1]
            i += 1
        i += 1
        *tables, name = key.split(".")
        if not name or not all(tables):
            raise ConfigError("", f"{arg!r}: overrides look like --section.key VALUE")
        node = out
        for depth, part in enumerate(tables):
            sub = node.setdefault(part, {})
            if not isinstance(sub, dict):
                raise ConfigError(".".join(tables[: depth + 1]), "is a value, not a table")
            node = sub
        node[name] = Raw(value)
    return out


def _copy_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy_tables(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(plain arguments, dotted overrides) of a command line: ``--a.b VALUE``
    and ``--a.b=VALUE`` are overrides, everything else is for argparse."""
    rest, overrides = [], []
    argv = list(argv)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "." in a.split("=", 1)[0]:
            overrides.append(a)
            if "=" not in a and i + 1 < len(argv):
                overrides.append(argv[i + 1])
                i += 1
        else:
            rest.append(a)
        i += 1
    return rest, overrides


# ---- describe ------------------------------------------------------------------------
def _fmt_default(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_fmt_default(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_fmt_default(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _describe(cls: type, prefix: str, instance: Any = None) -> list[str]:
    hints = _hints(cls)
    lines: list[str] = []
    nested: list[tuple[str, type, Any, str]] = []
    doc = (cls.__doc__ or "").strip().split("\n")[0] if cls.__doc__ else ""
    knobs = []
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name) if instance is not None else _default(f)
        sec, _ = _section_of(hints[f.name])
        if sec is not None and isinstance(value, Section):
            nested.append((f.name, sec, value, f.metadata.get("doc", "")))
            continue
        choices = ""
        if typing.get_origin(hints[f.name]) is typing.Literal:
            choices = f" ({' | '.join(map(str, typing.get_args(hints[f.name])))})"
        knobs.append(f"{f.name} = {_fmt_default(value)}  # {f.metadata.get('doc', '')}{choices}")
    if prefix and (knobs or not nested):
        lines.append(f"[{prefix}]" + (f"  # {doc}" if doc else ""))
    lines += knobs
    if knobs:
        lines.append("")
    for name, sec, value, _ in nested:
        lines += _describe(sec, _join(prefix, name), value)
    if isinstance(cls, type) and issubclass(cls, Section):
        for name, ext in cls.extensions().items():
            lines += _describe(ext, _join(prefix, name))
    return lines


# ---- command lines -------------------------------------------------------------------
def cli(
    root: type[S],
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    flags: Mapping[str, tuple[str, str]] = (),  # type: ignore[assignment]
    positional: Sequence[tuple[str, str]] = (),
    config_flag: bool = True,
    base: Mapping[str, Any] | None = None,
) -> S | None:
    """The config of a command line, or None when it only described itself.

    Every CLI takes ``--config FILE.toml`` (when ``config_flag``), dotted
    overrides, ``--describe`` (prints every knob and returns None), and
    short ``flags`` (``{"--out": ("output.dir", "help")}``: ``--out X`` is
    ``--output.dir X``; a key ending in ``[]`` takes a repeatable flag whose
    values make a list; one ending in ``!`` is a switch that sets the key
    to true, ``!no`` to false). ``base`` is a dict of defaults
    under the file's values (a command's own defaults). Raises
    :class:`ConfigError` for a bad config; argparse exits on bad flags.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    rest, overrides = split_overrides(argv)
    ap = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Any knob can be set as a dotted override (--section.key VALUE); "
        "--describe lists them all.",
    )
    if config_flag:
        ap.add_argument("--config", metavar="FILE", help="a TOML config (default: the defaults)")
    ap.add_argument("--describe", action="store_true", help="print every knob and exit")
    for name, help_ in positional:
        ap.add_argument(name, nargs="?", help=help_)
    dests = {}
    for flag, (key, help_) in dict(flags).items():
        dest = flag.lstrip("-").replace("-", "_")
        dests[dest] = key
        if key.endswith("!") or key.endswith("!no"):
            ap.add_argument(flag, dest=dest, action="store_true", help=help_)
        elif key.endswith("[]"):
            ap.add_argument(flag, dest=dest, action="append", metavar="VALUE", help=f"{help_} ({key[:-2]}, repeatable)")
        else:
            ap.add_argument(flag, dest=dest, metavar="VALUE", help=f"{help_} ({key})")
    args = ap.parse_args(rest)
    if args.describe:
        print(root.describe(), end="")
        return None
    extra: list[str] = []
    for dest, key in dests.items():
        v = getattr(args, dest)
        if key.endswith("!no"):
            if v:
                extra += [f"--{key[:-3]}", "false"]
        elif key.endswith("!"):
            if v:
                extra += [f"--{key[:-1]}", "true"]
        elif key.endswith("[]"):
            if v:
                # A JSON list of strings is a TOML array.
                extra += [f"--{key[:-2]}", json.dumps([str(x) for x in v])]
        elif v is not None:
            extra += [f"--{key}", v]
    data: dict[str, Any] = _copy_tables(base or {})
    file = getattr(args, "config", None) if config_flag else None
    for name, _ in positional:
        file = file or getattr(args, name)
    if file:
        data = _merge(data, read_toml(file))
    return root.from_dict(apply_overrides(data, overrides + extra))


def _merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def run_cli(main: Callable[[], int]) -> int:
    """Run a CLI body, turning a ConfigError into ``config error: ...`` and exit code 2."""
    try:
        return main()
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
