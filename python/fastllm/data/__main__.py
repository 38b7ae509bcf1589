"""``python -m fastllm.data``: the data pipeline's command line.

Subcommands:

- ``run CONFIG.toml [flags] [--section.key VALUE ...]``: the pipeline
  (inputs → extract → filters → dedup → tokenize → shards); see
  :mod:`fastllm.data.pipeline`.
- ``verify DIR``: check a shard set (checksums against the manifest, idx/bin
  structure); exits 1 and names every bad file.

Each subcommand is an ``add_<name>(subparsers)`` function that registers its
parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import sys

from fastllm.config import split_overrides


def _verify(args: argparse.Namespace) -> int:
    from fastllm.shards import read_manifest, verify

    bad = 0
    for d in args.dirs:
        problems = verify(d)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if problems:
            bad += 1
        elif not args.quiet:
            m = read_manifest(d)
            print(
                f"ok: {d}: {len(m['shards'])} shards, {m['documents']} documents, "
                f"{m['tokens']} tokens ({m['dtype']})"
            )
    return 1 if bad else 0


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check shard sets against their manifests")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="shard set directory")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.set_defaults(func=_verify)


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    from fastllm.data.config import ConfigError, PipelineConfig
    from fastllm.data.report import format_table

    if args.describe:
        print(PipelineConfig.describe(), end="")
        return 0

    overrides = list(extra)
    if args.input:
        overrides += ["--input.paths", "[" + ", ".join(_toml_str(p) for p in args.input) + "]"]
    for flag, key in (
        ("output", "output.dir"),
        ("tokenizer", "tokenizer.path"),
        ("engine", "run.engine"),
    ):
        if getattr(args, flag) is not None:
            overrides += [f"--{key}", _toml_str(getattr(args, flag))]
    for flag, key in (
        ("no_dedup", "dedup.enabled"),
        ("no_filter", "filter.enabled"),
        ("no_extract", "run.extract"),
        ("no_progress", "run.progress"),
    ):
        if getattr(args, flag):
            overrides += [f"--{key}", "false"]
    if args.force:
        overrides += ["--run.force", "true"]
    try:
        cfg = PipelineConfig.load(args.config, overrides)
        from fastllm.data.pipeline import run

        report = run(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if report.get("finished_before"):
        print(f"{cfg.output.dir}: already finished (--force to redo); its report:")
    print(format_table(report))
    return 0


def _toml_str(s: str) -> str:
    import json

    return json.dumps(str(s))  # a JSON string is a TOML basic string


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the pipeline: inputs -> extract -> filters -> dedup -> tokenize -> shards",
        epilog="Any config key can be overridden: --dedup.threshold 0.9 --filter.c4.enabled false",
    )
    p.add_argument("config", nargs="?", help="TOML config (optional: flags and overrides suffice)")
    p.add_argument("--input", action="append", metavar="PATH", help="input file or directory (repeatable; replaces input.paths)")
    p.add_argument("--output", metavar="DIR", help="output directory (output.dir)")
    p.add_argument("--tokenizer", metavar="FILE", help="HF tokenizer.json (tokenizer.path)")
    p.add_argument("--engine", choices=("local", "ray"), help="run.engine")
    p.add_argument("--force", action="store_true", help="redo finished outputs")
    p.add_argument("--no-dedup", action="store_true", help="skip deduplication")
    p.add_argument("--no-filter", action="store_true", help="skip the filter stages")
    p.add_argument("--no-extract", action="store_true", help="keep HTML inputs as raw text")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--describe", action="store_true", help="print every knob and exit")
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastllm.data", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run(sub)
    add_verify(sub)
    argv, extra = split_overrides(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    if args.func is _run:
        return _run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
