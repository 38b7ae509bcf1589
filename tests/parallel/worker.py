"""Run under torchrun by the tests in tests/parallel: train the test config
with the overrides given, print one result line per rank, leave the process
group and exit hard (notes/torch-on-cpu.md: the gloo teardown abort).

With ``{"runs": {name: {"overrides": ..., "until": ...}}}`` as the overrides,
it trains each run in turn in ``out_dir/name`` (one launch, one process
group, several configs: what tests/parallel/test_deepspeed.py uses to pay
the start of torch and DeepSpeed once)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.train.helpers

from fastllm.parallel import teardown  # noqa: E402
from fastllm.train import Trainer  # noqa: E402
from tests.train.helpers import config, data  # noqa: E402


def shard_local_newton_schulz() -> None:
    """The bug the Muon tests must catch (DeepSpeed issue 7807): each rank
    orthogonalizes its own slice of a sharded matrix."""
    from fastllm.optim import sharded_muon

    def local(updates, orthogonalize, gather_all=False):
        return [orthogonalize(u.to_local().unsqueeze(0))[0] for u in updates]

    sharded_muon.orthogonalize_sharded = local


def train(out_dir: str, overrides: dict, until: int | None, run: str | None = None) -> None:
    overrides = dict(overrides)
    if overrides.pop("shard_local_newton_schulz", False):
        shard_local_newton_schulz()
    cfg = config(out_dir, **overrides)
    trainer = Trainer(cfg, *data(eos_id=cfg.data.eos_id), log=lambda _: None)
    records = trainer.fit(until=until)
    result = {
        **({"run": run} if run is not None else {}),
        "rank": trainer.dist.rank,
        "world": trainer.dist.world_size,
        "dp": [trainer.mesh.dp_rank, trainer.mesh.dp_size],
        "micro_batch": trainer.micro_batch,
        "start": trainer.step - len(records),
        "losses": [r["loss"] for r in records],
        "grad_norms": [r["grad_norm"] for r in records],
        "skipped": [r["skipped"] for r in records],
        "val_loss": records[-1].get("val_loss") if records else None,
    }
    # One write call per line: lines of ranks sharing the pipe do not interleave.
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def main() -> None:
    out_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
    until = int(sys.argv[3]) if len(sys.argv) > 3 else None
    if "runs" in overrides:
        for name, run in overrides["runs"].items():
            train(str(Path(out_dir) / name), run["overrides"], run.get("until"), name)
    else:
        train(out_dir, overrides, until)
    teardown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
