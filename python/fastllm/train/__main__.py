"""``python -m fastllm.train``: train from a TOML config plus dotted overrides.

    python -m fastllm.train --config configs/tiny.toml --train.steps 200 --optim.name muon
    torchrun --nproc_per_node 2 -m fastllm.train --config configs/tiny.toml

Data: ``data.tokens`` (a .npy or raw token file), else the UTF-8 bytes of the
Python standard library's own sources (ids 0-255, no download). Print every
knob with ``--describe``.
"""

from __future__ import annotations

import argparse
import os
import sys

from fastllm.train.config import TrainConfig
from fastllm.train.data import TokenStream, load_tokens, split, stdlib_bytes


def shard_data(path: str, shuffle: bool):
    """A factory of resumable batches over a shard set, endless (epoch after
    epoch, reshuffled each), each rank reading its share."""
    from fastllm.shards import PackedDataset, ShardLoader, ShardSet

    shard_set = ShardSet(path)  # opened (and validated) once, at start

    def make(spec):
        ds = PackedDataset(
            shard_set,
            spec.seq_len,
            batch_size=spec.batch_size,
            seed=spec.seed,
            shuffle=shuffle,
            rank=spec.rank,
            world_size=spec.world_size,
            num_samples=1 << 62,
        )
        return ShardLoader(ds)

    return make


def build_data(config: TrainConfig):
    """(train factory, validation factory) for the ``[data]`` table."""
    d = config.data
    if d.shards:
        return shard_data(d.shards, d.shuffle), (
            shard_data(d.val_shards, False) if d.val_shards else None
        )
    if d.tokens:
        tokens = load_tokens(d.tokens, d.token_dtype)
    else:
        tokens = stdlib_bytes(d.embedded_bytes)
    top = int(tokens.max()) if len(tokens) else 0
    if top >= config.model.vocab_size:
        raise ValueError(
            f"data.tokens holds id {top}, outside model.vocab_size={config.model.vocab_size}"
        )
    train, val = split(tokens, d.val_fraction)
    return (
        TokenStream.factory(train, shuffle=d.shuffle, eos_id=d.eos_id),
        TokenStream.factory(val, shuffle=False, eos_id=d.eos_id),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        prog="python -m fastllm.train", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--config", default=None, help="a run config TOML (default: all defaults)")
    ap.add_argument("--describe", action="store_true", help="print every knob and exit")
    args, overrides = ap.parse_known_args(argv)
    if args.describe:
        print(TrainConfig.describe())
        return 0
    try:
        config = TrainConfig.load(args.config, overrides)
        train, val = build_data(config)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from fastllm.train.distributed import teardown
    from fastllm.train.loop import Trainer

    trainer = Trainer(config, train, val, tokenizer_path=config.data.tokenizer or None)
    trainer.fit()
    if trainer.dist.distributed:
        teardown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # notes/torch-on-cpu.md: gloo can abort at interpreter exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
