"""Run under torchrun by test_ddp.py: train the test config, print one result
line per rank, leave the process group and exit hard (notes/torch-on-cpu.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.train.helpers

import torch  # noqa: E402

from fastllm.parallel.distributed import teardown  # noqa: E402
from fastllm.train import Trainer  # noqa: E402
from tests.train.helpers import config, data  # noqa: E402


def main() -> None:
    out_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
    cfg = config(out_dir, **overrides)
    train, val = data()
    trainer = Trainer(cfg, train, val, log=lambda _: None)
    records = trainer.fit()
    result = {
        "rank": trainer.dist.rank,
        "world": trainer.dist.world_size,
        "micro_batch": trainer.micro_batch,
        "losses": [r["loss"] for r in records],
        "grad_norms": [r["grad_norm"] for r in records],
        "val_loss": records[-1].get("val_loss"),
        "param_sum": float(sum(p.detach().double().sum() for p in trainer.model.parameters())),
    }
    # Fresh objects resume from the checkpoint the run wrote at its end: every
    # rank loads the shared model/optimizer and its own RNG and data position.
    again = Trainer(cfg, *data(), log=lambda _: None)
    result["resumed_step"] = again.step
    result["resumed_equal"] = all(
        torch.equal(a, b)
        for a, b in zip(
            trainer.model.state_dict().values(), again.model.state_dict().values(), strict=True
        )
    )
    result["resumed_data"] = again.train_data.state_dict() == trainer.train_data.state_dict()
    print("RESULT " + json.dumps(result), flush=True)
    teardown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
