"""``python -m fastllm.train``: train from a TOML config plus dotted overrides.

    python -m fastllm.train --config configs/tiny.toml --train.steps 200 --optim.name muon
    torchrun --nproc_per_node 2 -m fastllm.train --config configs/tiny.toml
    deepspeed --num_gpus 2 --module fastllm.train --config configs/tiny.toml --parallel.backend deepspeed

Data: ``data.shards`` (a shard set), ``data.tokens`` (a .npy or raw token
file), else the UTF-8 bytes of the Python standard library's own sources
(ids 0-255, no download). Print every knob with ``--describe``.
"""

from __future__ import annotations

import os
import sys

from fastllm.config import ConfigError, cli
from fastllm.train.config import TrainConfig


def _rank() -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"rank {os.environ.get('RANK', '0')}/{world}: " if world > 1 else ""


def main(argv: list[str] | None = None) -> int:
    # The deepspeed launcher appends --local_rank=N (LOCAL_RANK is in the environment too).
    argv = sys.argv[1:] if argv is None else argv
    argv = [a for a in argv if not a.startswith("--local_rank=")]
    try:
        config = cli(TrainConfig, argv, prog="python -m fastllm.train", description=__doc__.split("\n\n")[0])
        if config is None:
            return 0
        train, val = config.data.build(config.model)
        from fastllm.parallel.distributed import teardown
        from fastllm.train.loop import Trainer

        # The layout is checked against the world size here, before any work.
        trainer = Trainer(config, train, val, tokenizer_path=config.data.tokenizer or None)
    except ConfigError as e:
        print(f"{_rank()}config error: {e}", file=sys.stderr)
        return 2
    try:
        trainer.fit()
    except BaseException as e:  # every rank says which one failed, then the traceback
        print(f"{_rank()}training failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
    if trainer.mesh.device_mesh is not None:
        teardown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # notes/torch-on-cpu.md: gloo can abort at interpreter exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
