"""``python -m fastllm.data``: the data pipeline's command line.

Subcommands:

- ``verify DIR``: check a shard set (checksums against the manifest, idx/bin
  structure); exits 1 and names every bad file.

Each subcommand is an ``add_<name>(subparsers)`` function that registers its
parser and sets ``func``; ``run`` (the pipeline) is added the same way.
"""

from __future__ import annotations

import argparse
import sys


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastllm.data", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_verify(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
