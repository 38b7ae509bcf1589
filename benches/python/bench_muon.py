"""Muon vs AdamW: steps to reach AdamW's final validation loss (issue 8).

    python benches/python/bench_muon.py [--steps 150] [--adamw-lrs 1e-3,3e-3,1e-2]
        [--muon-lrs 0.02,0.04,0.08] [--out runs/bench_muon]
    python benches/python/bench_muon.py --overhead-only [--steps 40] [--batches 16,64]
    python benches/python/bench_muon.py --nproc 2      # every run on 2 gloo processes (FSDP2)

Same model (the tiny decoder over bytes, vocab 256), same data (the UTF-8
bytes of the Python standard library's own sources, a held-out tail for
validation), same token budget and schedule for both optimizers. AdamW's
learning rate is swept first; Muon's runs keep AdamW's best rate for the
parameters they leave to AdamW (embeddings, norms) and sweep Muon's rate.
The best run of each (lowest final validation loss) is compared: the target
is AdamW's final validation loss, and Muon's steps to reach it (linearly
interpolated between evaluations) over AdamW's steps is the ratio (issue 8's
goal: <= 0.7). Also measured: the optimizer step's share of a training step
(timed by step hooks), Muon's and AdamW's.

Writes <out>/muon_vs_adamw.png (both curves), <out>/results.json (every run,
the command, versions and machine) and prints a table. The default run takes
a few minutes on 2 cores.

``--overhead-only`` skips the sweep and the curves: one AdamW run (the first
AdamW rate) and one Muon run (the first Muon rate) of ``--steps`` steps
(default 40 there) without intermediate evaluation, and prints each
optimizer step's median share of the training step (about half a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastllm.train import TokenStream, TrainConfig, Trainer
from fastllm.train.data import split, stdlib_bytes


def run(args, name: str, lr: float, adamw_lr: float, train, val) -> dict:
    """One training run: here, or with ``--nproc`` > 1 under torchrun (gloo)."""
    if args.nproc > 1:
        return run_torchrun(args, name, lr, adamw_lr)
    return run_here(args, name, lr, adamw_lr, train, val)


def run_torchrun(args, name: str, lr: float, adamw_lr: float) -> dict:
    """``run_here`` on ``--nproc`` processes (FSDP2 over them: the default
    layout; Muon's matrices orthogonalized whole by their owners); rank 0's
    result."""
    import shutil
    import subprocess

    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    payload = json.dumps({"args": vars(args), "name": name, "lr": lr, "adamw_lr": adamw_lr})
    cmd = [*launcher, "--standalone", "--nproc_per_node", str(args.nproc), __file__, "--worker", payload]
    wrap = [shutil.which("timeout"), "1800"] if shutil.which("timeout") else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    proc = subprocess.run(wrap + cmd, env=env, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{name} lr {lr}: no result\n{proc.stderr[-3000:]}")
    for x in proc.stdout.splitlines():
        if x.startswith("  "):
            print(x, flush=True)
    return json.loads(lines[0][7:])


def worker(payload: dict) -> None:
    from fastllm.parallel import teardown

    args = argparse.Namespace(**payload["args"])
    if args.threads:
        torch.set_num_threads(args.threads)
    train_tokens, val_tokens = split(stdlib_bytes(args.bytes), 0.05)
    train, val = TokenStream.factory(train_tokens), TokenStream.factory(val_tokens, shuffle=False)
    rank = int(os.environ.get("RANK", "0"))
    if rank:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the progress lines of rank 0 only
    result = run_here(args, payload["name"], payload["lr"], payload["adamw_lr"], train, val)
    if rank == 0:
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()
    teardown()
    os._exit(0)


def run_here(args, name: str, lr: float, adamw_lr: float, train, val) -> dict:
    optim = {"name": name, "lr": adamw_lr if name == "muon" else lr, "weight_decay": 0.0}
    if name == "muon":
        optim["muon_lr"] = lr
        optim["muon_ns_dtype"] = args.ns_dtype
    cfg = TrainConfig.from_dict(
        {
            "model": {"size": "tiny", "vocab_size": 256, "max_seq_len": args.seq},
            "optim": optim,
            "schedule": {"name": args.schedule, "warmup_steps": args.warmup},
            "train": {
                "steps": args.steps,
                "batch": args.batch,
                "seq": args.seq,
                "dtype": args.dtype,
                "eval_every": args.eval_every,
                "eval_batches": args.eval_batches,
                "log_every": args.steps,
                "ckpt_every": 0,
                "spike_factor": 0.0,  # judge the optimizers, not the guard
                "spike_norm_factor": 0.0,
                "progress": False,
                "tensorboard": False,
                "seed": args.seed,
                "out_dir": tempfile.mkdtemp(prefix=f"bench_muon_{name}_"),
            },
        }
    )
    trainer = Trainer(cfg, train, val, log=lambda _: None)
    opt_times: list[float] = []
    t0 = [0.0]
    trainer.optimizer.register_step_pre_hook(lambda *_: t0.__setitem__(0, time.perf_counter()))
    trainer.optimizer.register_step_post_hook(
        lambda *_: opt_times.append(time.perf_counter() - t0[0])
    )
    start = time.perf_counter()
    records = trainer.fit()
    wall = time.perf_counter() - start
    warm = slice(min(5, len(records) - 1), None)  # leave out the first steps (allocation)
    step_s = statistics.median(r["step_s"] for r in records[warm])
    opt_s = statistics.median(opt_times[warm])
    curve = [(0, None)] + [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    result = {
        "optimizer": name,
        "lr": lr,
        "adamw_lr": optim["lr"],
        "final_val_loss": records[-1]["val_loss"],
        "final_train_loss": records[-1]["loss"],
        "val_curve": curve[1:],
        "train_curve": [(r["step"], r["loss"]) for r in records],
        "median_step_s": step_s,
        "median_optimizer_step_s": opt_s,
        "optimizer_share": opt_s / step_s,
        "wall_s": wall,
    }
    print(
        f"  {name:<5} lr {lr:<8g} final val {result['final_val_loss']:.4f}  "
        f"step {step_s * 1e3:6.1f} ms, optimizer {opt_s * 1e3:5.1f} ms ({opt_s / step_s:.1%})  "
        f"[{wall:.0f} s]",
        flush=True,
    )
    return result


def steps_to(curve: list[tuple[int, float]], target: float) -> float | None:
    """First step where the validation curve reaches ``target`` (interpolated)."""
    prev_step, prev_loss = 0, None
    for step, loss in curve:
        if loss <= target:
            if prev_loss is None or prev_loss == loss:
                return float(step)
            return prev_step + (step - prev_step) * (prev_loss - target) / (prev_loss - loss)
        prev_step, prev_loss = step, loss
    return None


def plot(best: dict[str, dict], target: float, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: matplotlib is not installed")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for name, r in best.items():
        label = f"{name} (lr {r['lr']:g})"
        s, loss = zip(*r["train_curve"], strict=True)
        ax1.plot(s, loss, lw=1, label=label)
        s, loss = zip(*r["val_curve"], strict=True)
        ax2.plot(s, loss, "o-", lw=1.5, ms=3, label=label)
    ax2.axhline(target, color="gray", ls="--", lw=1, label=f"AdamW final {target:.3f}")
    ax1.set_title("training loss")
    ax2.set_title("validation loss")
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/byte)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def ns_flop_share(size: str, vocab_size: int, seq: int, tokens_per_step: int) -> float:
    """Newton-Schulz FLOPs of one Muon step over the model's FLOPs of one
    training step (6 x matmul parameters x tokens, plus attention scores), by
    counting: each Muon matrix (m <= n after turning it wide) costs
    ns_steps x (4 m^2 n + 2 m^3). The hardware-independent part of the overhead."""
    from fastllm.model import Decoder, ModelConfig
    from fastllm.optim import OptimConfig
    from fastllm.optim.routing import route_parameters

    cfg = ModelConfig.named(size, vocab_size=vocab_size, max_seq_len=seq)
    with torch.device("meta"):
        model = Decoder(cfg)
    ns = model_flops = 0.0
    for r in route_parameters(model, OptimConfig(name="muon")):
        if r.param.ndim == 2:
            model_flops += 6 * r.param.numel() * tokens_per_step
        if r.optimizer == "muon":
            m, n = sorted(r.param.shape)
            ns += 5 * (4 * m * m * n + 2 * m**3)
    # Causal attention: QK^T and AV, forward and backward (x3), half the square.
    model_flops += 3 * 2 * 2 * cfg.n_layers * cfg.dim * seq * tokens_per_step / 2
    return ns / model_flops


def overhead_only(args, train, val) -> int:
    adamw_lr = float(args.adamw_lrs.split(",")[0])
    muon_lr = float(args.muon_lrs.split(",")[0])
    rows = []
    for batch in map(int, args.batches.split(",")):
        args.batch = batch
        print(f"batch {batch} x {args.seq} = {batch * args.seq:,} tokens a step")
        adamw = run(args, "adamw", adamw_lr, adamw_lr, train, val)
        muon = run(args, "muon", muon_lr, adamw_lr, train, val)
        extra = (muon["median_optimizer_step_s"] - adamw["median_optimizer_step_s"]) / adamw[
            "median_step_s"
        ]
        flops = ns_flop_share("tiny", 256, args.seq, batch * args.seq)
        rows.append((batch * args.seq, muon["optimizer_share"], adamw["optimizer_share"], extra, flops))
    print()
    print(
        "| tokens / step | Muon step / training step | AdamW step / training step "
        "| Muon extra over AdamW | NS FLOPs / model FLOPs |"
    )
    print("|---|---|---|---|---|")
    for tokens, share, adamw_share, extra, flops in rows:
        print(f"| {tokens:,} | {share:.1%} | {adamw_share:.1%} | {extra:.1%} | {flops:.1%} |")
    print(f"(median over steps 6-{args.steps}; tiny model, {args.dtype}, {torch.get_num_threads()} threads)")
    big = ns_flop_share("125M", 50304, 2048, 64 * 2048)
    print(f"125M config (configs/125M.toml, 131,072 tokens / step): NS FLOPs / model FLOPs {big:.1%}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="150 (40 with --overhead-only)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument(
        "--batches",
        default="16,64",
        help="--overhead-only: batch sizes to time (overhead falls as tokens per step grow)",
    )
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--adamw-lrs", default="1e-3,3e-3,1e-2")
    ap.add_argument("--muon-lrs", default="0.02,0.04,0.08")
    ap.add_argument("--schedule", default="cosine", help="cosine, linear, wsd or constant")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument(
        "--ns-dtype",
        default="auto",
        help="Muon's Newton-Schulz dtype: auto (bf16 on CUDA, fp32 elsewhere), bf16 or fp32",
    )
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--bytes", type=int, default=2_000_000, help="bytes of stdlib sources")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: tiny matmuls gain little from 2, and lose much when cores are shared)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes per run under torchrun (gloo; FSDP2 over them, the default layout)",
    )
    ap.add_argument("--out", default="runs/bench_muon")
    ap.add_argument(
        "--overhead-only",
        action="store_true",
        help="only time optimizer steps against training steps (one run per optimizer)",
    )
    args = ap.parse_args()
    if args.steps is None:
        args.steps = 40 if args.overhead_only else 150
    if args.overhead_only:
        args.eval_every = 0
        args.eval_batches = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tokens = stdlib_bytes(args.bytes)
    train_tokens, val_tokens = split(tokens, 0.05)
    train = TokenStream.factory(train_tokens)
    val = TokenStream.factory(val_tokens, shuffle=False)
    tokens_per_run = args.steps * args.batch * args.seq
    print(
        f"{len(tokens):,} bytes of stdlib sources; {args.steps} steps × {args.batch} × {args.seq}"
        f" = {tokens_per_run:,} tokens per run; {args.dtype}, {torch.get_num_threads()} threads"
    )
    if args.overhead_only:
        return overhead_only(args, train, val)
    runs = []
    print("AdamW sweep")
    for lr in map(float, args.adamw_lrs.split(",")):
        runs.append(run(args, "adamw", lr, lr, train, val))
    best_adamw = min(
        (r for r in runs if r["optimizer"] == "adamw"), key=lambda r: r["final_val_loss"]
    )
    print(f"Muon sweep (AdamW-routed parameters at lr {best_adamw['lr']:g})")
    for lr in map(float, args.muon_lrs.split(",")):
        runs.append(run(args, "muon", lr, best_adamw["lr"], train, val))
    best_muon = min(
        (r for r in runs if r["optimizer"] == "muon"), key=lambda r: r["final_val_loss"]
    )

    target = best_adamw["final_val_loss"]
    muon_steps = steps_to(best_muon["val_curve"], target)
    ratio = None if muon_steps is None else muon_steps / args.steps
    summary = {
        "target_val_loss": target,
        "adamw_steps": args.steps,
        "muon_steps_to_target": muon_steps,
        "ratio": ratio,
        "best_adamw_lr": best_adamw["lr"],
        "best_muon_lr": best_muon["lr"],
        "muon_optimizer_share": best_muon["optimizer_share"],
        "adamw_optimizer_share": best_adamw["optimizer_share"],
        "muon_overhead_vs_adamw": (
            best_muon["median_optimizer_step_s"] - best_adamw["median_optimizer_step_s"]
        )
        / best_adamw["median_step_s"],
    }
    print()
    print(
        f"| optimizer | lr | final val loss | steps to {target:.4f} | optimizer step / training step |"
    )
    print("|---|---|---|---|---|")
    for r in (best_adamw, best_muon):
        s = steps_to(r["val_curve"], target)
        print(
            f"| {r['optimizer']} | {r['lr']:g} | {r['final_val_loss']:.4f} | "
            f"{'not reached' if s is None else f'{s:.0f}'} | {r['optimizer_share']:.1%} |"
        )
    print()
    if ratio is None:
        print(
            f"Muon did not reach AdamW's final validation loss {target:.4f} in {args.steps} steps"
        )
    else:
        print(
            f"Muon reaches AdamW's final validation loss {target:.4f} at step {muon_steps:.0f} of "
            f"{args.steps}: ratio {ratio:.2f} (goal <= 0.70)"
        )
    print(
        f"Muon's optimizer step: {summary['muon_optimizer_share']:.1%} of a training step "
        f"(AdamW's: {summary['adamw_optimizer_share']:.1%}; Muon's extra over AdamW: "
        f"{summary['muon_overhead_vs_adamw']:.1%} of AdamW's step)"
    )
    png = out / "muon_vs_adamw.png"
    if plot({"adamw": best_adamw, "muon": best_muon}, target, png):
        print(f"curves: {png}")
    record = {
        "command": " ".join([sys.executable, *sys.argv]),
        "args": vars(args),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
        },
        "summary": summary,
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    raise SystemExit(main())
