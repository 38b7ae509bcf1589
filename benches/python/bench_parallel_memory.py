"""Model-state bytes per rank, measured from a real run's live tensors, beside
the planner's figure and DeepSpeed's estimators (issue 13).

    python benches/python/bench_parallel_memory.py [--modes ddp,zero1,...] [--out runs/bench_memory]

Each layout trains a small decoder (dim 128, 4 layers, vocab 512, untied
head; fp32 AdamW, so the planner's bytes per parameter are 4 + 4 + 8) for two
steps under ``torchrun`` with gloo, and every rank counts the local storage of
what it holds (a DTensor counts its local shard):

- parameters and optimizer states after the second step's update (at rest);
- under ``zero = 2``, parameters as held from forward to backward (FSDP2
  keeps every block's gathered weights then, the paper's ZeRO-2, and
  reshards them after backward: at rest it holds ZeRO-3's Φ/N);
- gradients at their largest: after the last micro-batch's backward, once
  the layout's reduction is done (FSDP2 reduce-scatters each micro-batch),
  and, under ZeRO-1, before the owners' reduce (each rank holds whole
  gradients until then).

The planner's figure for the same rank is ``fastllm.model.plan``'s
``model_state_parts`` over the parameters ``stage_params`` puts on that
rank (tensor and pipeline splits) — the ZeRO paper's accounting. Zero-sized
differences are the point; the table prints the relative difference of each
part and of the total.

A second table sets the planner's mixed-precision figures (ZeRO paper, K =
12) for the bench model and the seeds' two large models beside DeepSpeed's
``estimate_zero2_model_states_mem_needs`` / ``estimate_zero3_…`` (no
offload), with DeepSpeed's own accounting spelled out: its ZeRO-2 keeps an
fp32 copy of the gradient partition besides the fp16 one (2Φ + 18Φ/N where
the paper has 2Φ + 14Φ/N); its ZeRO-3 counts 18Φ/N plus four bytes per
parameter of the largest layer (gathered) where the paper has 16Φ/N.

Writes ``<out>/results.json`` (every rank's figures, command, versions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

MODEL = {
    "vocab_size": 512,
    "dim": 128,
    "n_layers": 4,
    "n_heads": 4,
    "n_kv_heads": 2,
    "max_seq_len": 64,
    "tie_embeddings": False,
}
# name -> (processes, [parallel] overrides)
MODES = {
    "ddp": (2, {"dp_replicate": 2, "dp_shard": 1}),
    "zero1": (2, {"zero": 1}),
    "zero2": (2, {"zero": 2}),
    "zero3": (2, {"zero": 3}),
    "zero1_n4": (4, {"zero": 1}),
    "zero3_n4": (4, {"zero": 3}),
    "tp2": (2, {"tp": 2, "dp_shard": 1}),
    "pp2": (2, {"pp": 2, "dp_shard": 1}),
    "dp2_tp2": (4, {"dp_shard": 2, "tp": 2}),
}
FP32_ADAMW = (4, 4, 8)  # weight, grad, optimizer-state bytes per parameter


def _config(out_dir: str, parallel: dict):
    from fastllm.train import TrainConfig

    return TrainConfig.from_dict(
        {
            "model": dict(MODEL),
            "optim": {"lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"name": "constant", "warmup_steps": 0},
            "train": {
                "steps": 2,
                "batch": 8,
                "seq": 32,
                "grad_accum": 2,
                "dtype": "fp32",
                "eval_every": 0,
                "ckpt_every": 0,
                "progress": False,
                "tensorboard": False,
                "dist_timeout_s": 120,
                "out_dir": out_dir,
            },
            "parallel": parallel,
        }
    )


def _bytes(t: torch.Tensor) -> int:
    from torch.distributed.tensor import DTensor

    local = t.to_local() if isinstance(t, DTensor) else t
    return local.numel() * local.element_size()


def worker(out_dir: str, parallel: dict) -> None:
    """One rank: two steps, its model-state bytes as a RESULT line."""
    from fastllm.parallel import teardown
    from fastllm.train import TokenStream, Trainer

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, MODEL["vocab_size"], (20_000,), generator=g)
    trainer = Trainer(_config(out_dir, parallel), TokenStream.factory(tokens), log=lambda _: None)
    engine, model = trainer.engine, trainer.model
    grads = [0]

    def grad_bytes() -> int:
        return sum(_bytes(p.grad) for p in model.parameters() if p.grad is not None)

    def watch(fn):
        def wrapped(*args, **kwargs):
            grads[0] = max(grads[0], grad_bytes())
            return fn(*args, **kwargs)

        return wrapped

    held = [0]

    def after_forward(*_):
        # FSDP2 swaps a module's parameters for the gathered ones while they are
        # unsharded: under zero = 2 every block's stay so from forward to backward.
        held[0] = max(held[0], sum(_bytes(p) for p in model.parameters()))

    model.register_forward_hook(after_forward)
    engine.clip_grad_norm = watch(engine.clip_grad_norm)
    if engine.zero_one is not None:
        engine.zero_one.reduce_gradients = watch(engine.zero_one.reduce_gradients)
    for _ in range(2):
        grads[0] = 0
        trainer.train_step()
    optim = sum(
        _bytes(v)
        for state in trainer.optimizer.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )
    result = {
        "rank": trainer.dist.rank,
        "pp_rank": trainer.mesh.pp_rank,
        "params": sum(_bytes(p) for p in model.parameters()),
        "params_held": held[0],
        "grads": grads[0],
        "optim": optim,
    }
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    teardown()
    sys.stdout.flush()
    os._exit(0)


def planner(parallel: dict, nproc: int, pp_rank: int) -> tuple[float, float, float]:
    """The planner's (weights, grads, optimizer) bytes of one rank."""
    from fastllm.model.plan import model_state_parts, stage_params

    cfg = _config("/tmp/unused", parallel)
    tp, pp = parallel.get("tp", 1), parallel.get("pp", 1)
    dp = nproc // (tp * pp)
    phi = stage_params(cfg.model, tp=tp, pp=pp)[pp_rank]["total"]
    zero = parallel.get("zero", 3)
    if parallel.get("dp_replicate", 1) > 1 or dp == 1:
        strategy = "ddp"
    else:
        strategy = f"zero{zero}"
    return model_state_parts(phi, dp, FP32_ADAMW)[strategy]


def run_mode(name: str, timeout: int) -> list[dict]:
    nproc, parallel = MODES[name]
    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    out = tempfile.mkdtemp(prefix=f"bench_memory_{name}_")
    cmd = [
        *launcher,
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        __file__,
        "--worker",
        json.dumps(parallel),
        out,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    wrap = [shutil.which("timeout"), str(timeout)] if shutil.which("timeout") else []
    proc = subprocess.run(wrap + cmd, env=env, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    rows = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if len(rows) != nproc:
        raise RuntimeError(f"{name}: {len(rows)} of {nproc} ranks reported\n{proc.stderr[-3000:]}")
    return sorted(rows, key=lambda r: r["rank"])


def deepspeed_table() -> list[dict]:
    """The planner's mixed-precision ZeRO-2/3 figures beside DeepSpeed's estimators."""
    from fastllm.model.config import ModelConfig
    from fastllm.model.plan import model_state_bytes, param_counts

    try:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    except ImportError:
        return []
    models = [
        ("bench", ModelConfig.from_dict(MODEL), 2),
        ("llama-70b", ModelConfig.from_dict({"size": "llama-70b"}), 64),
        ("gpt3-175b", ModelConfig.from_dict({"size": "gpt3-175b"}), 1024),
    ]
    rows = []
    for name, c, n in models:
        counts = param_counts(c)
        phi = counts["total"]
        largest = c.vocab_size * c.dim  # the embedding (or head): the largest single layer
        ours = model_state_bytes(phi, n)
        _, ds2 = estimate_zero2_model_states_mem_needs(phi, n, 1, cpu_offload=False)
        _, ds3, _ = estimate_zero3_model_states_mem_needs(
            phi, largest, n, 1, cpu_offload=False, cpu_offload_params=False
        )
        # The planner with DeepSpeed's accounting: an fp32 gradient partition
        # (4Φ/N) beside ZeRO-2's fp16 one; ZeRO-3 (2 + 16)Φ/N + 4·largest layer.
        rows.append(
            {
                "model": name,
                "params": phi,
                "gpus": n,
                "zero2_planner": ours["zero2"],
                "zero2_planner_ds_accounting": ours["zero2"] + 4 * phi / n,
                "zero2_deepspeed": ds2,
                "zero3_planner": ours["zero3"],
                "zero3_planner_ds_accounting": 18 * phi / n + 4 * largest,
                "zero3_deepspeed": ds3,
            }
        )
    return rows


def _rel(a: float, b: float) -> str:
    return f"{(a - b) / b:+.2%}" if b else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--out", default="runs/bench_memory")
    args = ap.parse_args()

    results = {}
    print(
        f"{'mode':<9} {'rank':>4} | {'params':>9} {'plan':>9} {'Δ':>7} | {'grads':>9} {'plan':>9} "
        f"{'Δ':>7} | {'optim':>9} {'plan':>9} {'Δ':>7} | {'total Δ':>8}"
    )
    for name in args.modes.split(","):
        nproc, parallel = MODES[name]
        rows = run_mode(name, args.timeout)
        for r in rows:
            w, g, o = planner(parallel, nproc, r["pp_rank"])
            r["planner"] = {"params": w, "grads": g, "optim": o}
            if parallel.get("zero") == 2:
                # FSDP2's ZeRO-2 holds whole weights from forward to backward
                # (the paper's ZeRO-2), sharded again after backward.
                r["params_at_rest"], r["params"] = r["params"], r["params_held"]
            total = r["params"] + r["grads"] + r["optim"]
            print(
                f"{name:<9} {r['rank']:>4} | {r['params']:>9,} {w:>9,.0f} {_rel(r['params'], w):>7} | "
                f"{r['grads']:>9,} {g:>9,.0f} {_rel(r['grads'], g):>7} | "
                f"{r['optim']:>9,} {o:>9,.0f} {_rel(r['optim'], o):>7} | {_rel(total, w + g + o):>8}"
            )
        results[name] = rows

    ds = deepspeed_table()
    if ds:
        print("\nmixed-precision Adam, GB per GPU (1e9 bytes): planner (ZeRO paper) vs DeepSpeed")
        print(
            f"{'model':<10} {'N':>5} | {'z2 plan':>9} {'z2 plan+ds':>10} {'z2 DS':>9} | "
            f"{'z3 plan':>9} {'z3 plan+ds':>10} {'z3 DS':>9}"
        )
        for r in ds:
            g = 1e9
            print(
                f"{r['model']:<10} {r['gpus']:>5} | {r['zero2_planner'] / g:>9.4f} "
                f"{r['zero2_planner_ds_accounting'] / g:>10.4f} {r['zero2_deepspeed'] / g:>9.4f} | "
                f"{r['zero3_planner'] / g:>9.4f} {r['zero3_planner_ds_accounting'] / g:>10.4f} "
                f"{r['zero3_deepspeed'] / g:>9.4f}"
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "layouts": results,
        "deepspeed": ds,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[3], json.loads(sys.argv[2]))
    else:
        main()
