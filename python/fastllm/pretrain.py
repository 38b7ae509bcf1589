"""``python -m fastllm.pretrain``: the whole path, raw text to a model.

The pretraining loop is not built yet (see the issue tracker); until it is,
this entry point says what the installed package offers.
"""

from __future__ import annotations

import sys

import fastllm


def available() -> list[tuple[str, str]]:
    """The stages this build of fastllm offers, as (name, how to use it)."""
    stages = [("rust core", f"fastllm._core {fastllm._core.__version__}, "
               f"{fastllm.get_num_threads()} threads")]
    stages.append(("exact dedup hashes", "fastllm.dedup.exact_duplicates(texts)"))
    return stages


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(f"fastllm {fastllm.__version__}")
    print("The pretraining loop is not built yet. Available now:")
    for name, how in available():
        print(f"  - {name}: {how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
