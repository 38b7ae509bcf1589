"""Muon under data parallelism and ZeRO-3: the optimizer step's share of a
training step, owner scheme vs gather-all (Moonlight) vs AdamW (issue 14).

    python benches/python/bench_muon_sharded.py [--nproc 2] [--steps 8] [--dim 256] [--out runs/bench_muon_sharded]

Each row trains the same decoder (``--dim``, 4 layers, vocab 1024, untied)
for ``--steps`` fp32 steps under ``torchrun`` with gloo; the optimizer step
is timed by step hooks on every rank (the slowest rank counts) and its
median share of the training step is printed after ``--warmup`` steps:

- ``dp`` rows: DDP (``dp_replicate``): Muon orthogonalizes every matrix on
  every rank (whole gradients everywhere, no extra traffic);
- ``zero3`` rows: FSDP2, Muon with ``optim.muon_sharded`` = ``owner`` (each
  matrix once, on its owner; gather + scatter) and ``gather_all`` (every
  rank gathers and orthogonalizes every matrix).

The Newton–Schulz balance of the owner assignment for the 125M and 1B
shapes at 2, 4 and 8 ranks is printed too (max over ranks / mean of the
FLOPs each owner runs). Writes ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROWS = {  # name -> ([parallel], [optim] overrides)
    "dp adamw": ({"dp_replicate": -1, "dp_shard": 1}, {"name": "adamw"}),
    "dp muon": ({"dp_replicate": -1, "dp_shard": 1}, {"name": "muon"}),
    "zero3 adamw": ({"zero": 3}, {"name": "adamw"}),
    "zero3 muon owner": ({"zero": 3}, {"name": "muon", "muon_sharded": "owner"}),
    "zero3 muon gather_all": ({"zero": 3}, {"name": "muon", "muon_sharded": "gather_all"}),
}


def worker(spec: dict) -> None:
    from fastllm.parallel import teardown
    from fastllm.train import TokenStream, TrainConfig, Trainer

    cfg = TrainConfig.from_dict(
        {
            "model": {
                "vocab_size": 1024,
                "dim": spec["dim"],
                "n_layers": 4,
                "n_heads": 4,
                "n_kv_heads": 4,
                "max_seq_len": 128,
                "tie_embeddings": False,
            },
            "optim": {"lr": 1e-3, "muon_lr": 0.02, "weight_decay": 0.0, **spec["optim"]},
            "schedule": {"name": "constant", "warmup_steps": 0},
            "train": {
                "steps": spec["steps"],
                "batch": spec["batch"],
                "seq": 128,
                "dtype": "fp32",
                "eval_every": 0,
                "ckpt_every": 0,
                "progress": False,
                "tensorboard": False,
                "spike_factor": 0.0,
                "spike_norm_factor": 0.0,
                "dist_timeout_s": 300,
                "out_dir": spec["out"],
            },
            "parallel": spec["parallel"],
        }
    )
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 1024, (spec["batch"] * 129 * (spec["steps"] + 2),), generator=g)
    trainer = Trainer(cfg, TokenStream.factory(tokens), log=lambda _: None)
    opt, t0 = [], [0.0]
    trainer.optimizer.register_step_pre_hook(lambda *_: t0.__setitem__(0, time.perf_counter()))
    trainer.optimizer.register_step_post_hook(lambda *_: opt.append(time.perf_counter() - t0[0]))
    steps = []
    for _ in range(spec["steps"]):
        s = time.perf_counter()
        trainer.train_step()
        steps.append(time.perf_counter() - s)
    line = {"rank": trainer.dist.rank, "opt": opt, "step": steps}
    sys.stdout.write("RESULT " + json.dumps(line) + "\n")
    sys.stdout.flush()
    teardown()
    sys.stdout.flush()
    os._exit(0)


def run_row(name: str, args) -> dict:
    parallel, optim = ROWS[name]
    parallel = {k: (args.nproc if v == -1 else v) for k, v in parallel.items()}
    out = tempfile.mkdtemp(prefix="bench_muon_sharded_")
    spec = {
        "dim": args.dim,
        "steps": args.steps,
        "batch": args.batch,
        "parallel": parallel,
        "optim": optim,
        "out": out,
    }
    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [
        *launcher,
        "--standalone",
        "--nproc_per_node",
        str(args.nproc),
        __file__,
        "--worker",
        json.dumps(spec),
    ]
    wrap = [shutil.which("timeout"), str(args.timeout)] if shutil.which("timeout") else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(wrap + cmd, env=env, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    ranks = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if len(ranks) != args.nproc:
        raise RuntimeError(f"{name}: {len(ranks)} ranks reported\n{proc.stderr[-3000:]}")
    w = args.warmup
    opt = [max(r["opt"][i] for r in ranks) for i in range(w, args.steps)]
    step = [max(r["step"][i] for r in ranks) for i in range(w, args.steps)]
    return {
        "row": name,
        "parallel": parallel,
        "optim": optim,
        "opt_s": statistics.median(opt),
        "step_s": statistics.median(step),
        "share": statistics.median(o / s for o, s in zip(opt, step, strict=True)),
    }


def balance() -> list[dict]:
    from fastllm.model import Decoder, ModelConfig
    from fastllm.optim.sharded_muon import assign_owners, ns_flops

    rows = []
    for size in ("125M", "1B"):
        with torch.device("meta"):
            model = Decoder(ModelConfig.named(size))
        shapes = [
            tuple(p.shape) for n, p in model.named_parameters() if p.ndim == 2 and "layers" in n
        ]
        for ranks in (2, 4, 8):
            load = [0.0] * ranks
            for shape, owner in zip(shapes, assign_owners(shapes, ranks), strict=True):
                load[owner] += ns_flops(shape)
            rows.append(
                {
                    "model": size,
                    "ranks": ranks,
                    "matrices": len(shapes),
                    "max_over_mean": max(load) / (sum(load) / ranks),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", default="runs/bench_muon_sharded")
    args = ap.parse_args()
    print(
        f"dim {args.dim}, 4 layers, vocab 1024, batch {args.batch} × 128, fp32, {args.nproc} ranks (gloo)"
    )
    print(f"{'row':<22} {'optimizer s':>11} {'step s':>8} {'share':>6}")
    rows = []
    for name in args.rows.split(","):
        r = run_row(name, args)
        rows.append(r)
        print(f"{name:<22} {r['opt_s']:>11.4f} {r['step_s']:>8.3f} {r['share']:>6.1%}", flush=True)
    bal = balance()
    print("\nNewton–Schulz FLOPs per owner, max / mean (goal <= 1.2):")
    for b in bal:
        print(
            f"  {b['model']:<5} {b['ranks']} ranks, {b['matrices']} matrices: {b['max_over_mean']:.4f}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rows": rows,
        "balance": bal,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        main()
