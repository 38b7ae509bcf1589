"""``python tests/data/pipeline/kill.py POINT:N run ARGS...``: the pipeline's
command line, SIGKILLed at a known point, so tests can interrupt a run where
they want it. The production code knows nothing of it: the points are
functions of the pipeline wrapped here before the CLI starts.

- ``unit:N``: after the N-th unit this process finished (marker written);
- ``batch:N``: after N batches were written to units' temporary files (as
  the next one is made);
- ``shard:N``: after the N-th batch added to a shard writer;
- ``dedup:1``: when the disk dedup is called (its inputs are written).
"""

from __future__ import annotations

import os
import signal
import sys


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(fn, at: int, before: bool):
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if before and calls[0] == at:
            _kill()
        out = fn(*args, **kwargs)
        if not before and calls[0] == at:
            _kill()
        return out

    return wrapper


def install(point: str, n: int) -> None:
    """Wrap the function that marks ``point`` so that its ``n``-th call kills
    this process."""
    from fastllm.data.dedup import disk
    from fastllm.data.pipeline import local
    from fastllm.shards import writer

    if point == "unit":
        local.LocalEngine.process_unit = _counting(local.LocalEngine.process_unit, n, False)
    elif point == "batch":
        local.signatures = _counting(local.signatures, n + 1, True)
    elif point == "shard":
        writer.ShardWriter.add = _counting(writer.ShardWriter.add, n, False)
    elif point == "dedup":
        disk.dedup_shards = _counting(disk.dedup_shards, n, True)
    else:
        raise SystemExit(f"kill.py: unknown point {point!r} (unit, batch, shard, dedup)")


if __name__ == "__main__":
    point, _, count = sys.argv[1].partition(":")
    install(point, int(count))
    from fastllm.data.__main__ import main

    sys.exit(main(sys.argv[2:]))
