"""One GPU, the ZeRO-3 path: FSDP2 (bf16 parameters, fp32 reduction) vs the
plain model, ``torch.compile`` on, for the 125M and 1B configs (issue 13).

    python benches/gpu/bench_fsdp.py [--steps 12] [--out runs/bench_fsdp]
    python benches/gpu/bench_fsdp.py --quick        # CPU check: tiny model, 3 steps

Each row trains ``--steps`` AdamW steps on random tokens (a fixed seed) with
bf16 autocast; the first ``--warmup`` steps (compilation) are left out of
the timing. Reported: tokens/s, MFU from the planner's FLOPs per token
(``fastllm.model.plan.flops_per_token``) over the GPU's peak
(``--peak-tflops``, 989 for H100/H200 dense bf16), peak allocated memory
(``torch.cuda.max_memory_allocated``) beside the planner's figure for one GPU
(model states of fp32 AdamW with bf16 gathered weights under FSDP2: 16 bytes
per parameter of fp32 weights, grads and Adam m, v, plus the activations of
``plan.activation_bytes``), and the last loss (the plain and FSDP2 rows of a
model train the same steps: their losses should agree to bf16 noise).

Writes ``<out>/results.json`` with the command, versions, device and rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROWS = {  # name -> (model size, micro-batch, seq); sizes as in configs/model/
    "125M": ("125M", 16, 2048),
    "1B": ("1B", 8, 2048),
}


def run_row(size: str, batch: int, seq: int, fsdp: bool, args) -> dict:
    from fastllm.model.plan import activation_bytes, flops_per_token, param_counts
    from fastllm.parallel import teardown
    from fastllm.train import TokenStream, TrainConfig, Trainer

    model = {"size": "tiny" if args.quick else size}
    cfg = TrainConfig.from_dict(
        {
            "model": model,
            "optim": {"name": "adamw", "lr": 3e-4, "weight_decay": 0.1},
            "schedule": {"name": "constant", "warmup_steps": 0},
            "train": {
                "steps": args.steps,
                "batch": batch,
                "seq": seq,
                "dtype": "bf16",
                "compile": not args.no_compile,
                "eval_every": 0,
                "ckpt_every": 0,
                "log_every": 1,
                "progress": False,
                "tensorboard": False,
                "spike_factor": 0.0,
                "spike_norm_factor": 0.0,
                "peak_tflops": args.peak_tflops,
                "out_dir": tempfile.mkdtemp(prefix="bench_fsdp_"),
            },
            "parallel": {
                "fsdp_one_process": fsdp,
                "param_dtype": "bf16",
                "reduce_dtype": "fp32",
                "zero": 3,
            },
        }
    )
    g = torch.Generator().manual_seed(0)
    n_tokens = batch * (seq + 1) * (args.steps + 2)
    tokens = torch.randint(0, cfg.model.vocab_size, (n_tokens,), generator=g)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg, TokenStream.factory(tokens), log=lambda _: None)
    times, losses = [], []
    try:
        for _ in range(args.steps):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            record = trainer.train_step()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            losses.append(record["loss"])
    finally:
        if fsdp:
            teardown()
    timed = times[args.warmup :] or times[-1:]
    step_s = sorted(timed)[len(timed) // 2]
    tok_s = batch * seq / step_s
    fpt = flops_per_token(cfg.model, seq)["total"]
    phi = param_counts(cfg.model)["total"]
    planned = 16 * phi + activation_bytes(cfg.model, batch, seq, checkpointing=False)
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    return {
        "model": "tiny" if args.quick else size,
        "fsdp": fsdp,
        "params": phi,
        "batch": batch,
        "seq": seq,
        "step_s": step_s,
        "tokens_per_s": tok_s,
        "mfu": tok_s * fpt / (args.peak_tflops * 1e12),
        "peak_bytes": peak,
        "planned_bytes": planned,
        "last_loss": losses[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="CPU check: tiny model, 3 steps, seq 64")
    ap.add_argument("--out", default="runs/bench_fsdp")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.no_compile = 3, 1, True
    rows = []
    print(f"{'model':<8} {'mode':<6} {'tok/s':>10} {'MFU':>6} {'peak GB':>8} {'plan GB':>8} {'loss':>7}")
    for name in args.rows.split(","):
        file, batch, seq = ROWS[name]
        if args.quick:
            batch, seq = 2, 64
        for fsdp in (False, True):
            r = run_row(file, batch, seq, fsdp, args)
            r["row"] = name
            rows.append(r)
            print(
                f"{name:<8} {'fsdp2' if fsdp else 'plain':<6} {r['tokens_per_s']:>10,.0f} "
                f"{r['mfu']:>6.1%} {r['peak_bytes'] / 1e9:>8.2f} {r['planned_bytes'] / 1e9:>8.2f} "
                f"{r['last_loss']:>7.3f}",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
