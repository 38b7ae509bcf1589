"""The pipeline bubble, measured per stage from timestamps, beside (p − 1)/(m + p − 1).

    python benches/python/bench_pipeline_bubble.py [--schedules gpipe,1f1b] [--microbatches 2,4,8]
        [--dim 384] [--layers 4] [--vocab 256] [--batch 16] [--seq 128] [--steps 4]
        [--out runs/bench_pipeline_bubble]

Each (schedule, m) runs the fastllm Trainer under ``torchrun`` with 2 ranks
(``parallel.pp = 2``: two stages of 2 blocks each, the embedding on the
first, the final norm and head on the second), gloo, CPU, one thread a rank.
The global batch is fixed (``--batch`` sequences a step), so each of the m
micro-batches holds batch/m sequences and its work shrinks with m, as in the
formula's setting. One warm-up step (the schedule's shape inference,
allocations), then ``--steps`` measured steps.

On each stage the instance's ``forward_one_chunk`` and ``backward_one_chunk``
(the stage's compute for one micro-batch) and the schedule's
``_maybe_compute_loss`` (the loss on the last stage) are wrapped to record
``time.perf_counter()`` at their start and end. Everything else a stage does
inside the schedule — waiting for and running gloo send/recv of activations
and gradients, the schedule's own bookkeeping — counts as idle. The step's
window runs from the first compute start to the last compute end over both
stages; a stage's idle fraction is 1 − busy / window, averaged over the
measured steps. ``perf_counter`` is ``CLOCK_MONOTONIC`` on Linux, one clock
for every process of the machine; the bench checks it by reading it on both
ranks just after a barrier (the smallest spread of 5 such reads is printed:
an upper bound on any offset of the clocks, mostly the barrier's exit jitter).
Each row also records the 1-minute load average at its start, which counts
this bench's own two ranks (about 2 when nothing else runs).

The formula assumes equal stages and free communication. Here the stages
are not quite equal (the first holds the embedding lookup, the second the
final norm, head and loss: with vocab 256 the head is ~4% of a stage's
matmuls), each stage has one core (OMP_NUM_THREADS=1 on 2 cores, so any
other job on the machine takes time from a stage's compute and stretches it
unevenly), and gloo send/recv of activations and gradients, their waits and
the schedule's per-micro-batch bookkeeping count as idle and do not shrink
with the micro-batch: at large m the measured idle sits above the formula.
The column "same compute, free comm" replays each step's recorded compute
(every forward and backward with its measured duration, in the order the
schedule ran them) with free communication and no overhead: F(s, i) waits
for F(s - 1, i) and B(s, i) for B(s + 1, i). With equal stages that replay is
the formula exactly; its gap to the formula is the stages' imbalance and
the noise of the compute itself, and the gap between it and the measured
idle (the column "comm + overhead", means over the stages) is
communication and overhead. Beside it, the one-way time of one
micro-batch's activation over gloo (a ping-pong of a (batch/m, seq, dim)
fp32 tensor after the warm-up, median of 10): a step moves 2m of them
between the stages (m activations forward, m gradients back). Most ops start
within a millisecond of the moment they could (the previous op on their
stage and the op they depend on have ended), but about one to four per step
start 10-270 ms late (the column "ops late"): far more than the ping-pong's
0.3-2 ms. Where those delays come from (gloo finishing a send while the
sender computes, the scheduler under other jobs) is not pinned down here;
they make most of the "comm + overhead" column, and they are what "gloo
send/recv cost shows as idle" amounts to on this machine.

Writes <out>/results.json (every timestamp of rank 0 and 1, the command,
versions and machine) and prints the table.
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
from typing import Any

import torch
import torch.distributed as dist

# ---- one (schedule, m) under torchrun (the worker) ----------------------------------


def train_config(spec: dict[str, Any], out_dir: str):
    from fastllm.train import TrainConfig

    return TrainConfig.from_dict(
        {
            "model": {
                "vocab_size": spec["vocab"],
                "dim": spec["dim"],
                "n_layers": spec["layers"],
                "n_heads": spec["heads"],
                "n_kv_heads": spec["heads"],
                "max_seq_len": spec["seq"],
                "tie_embeddings": False,
            },
            "optim": {"name": "adamw", "lr": 1e-4, "weight_decay": 0.0},
            "schedule": {"name": "constant", "warmup_steps": 0},
            "train": {
                "steps": spec["steps"] + 1,
                "batch": spec["batch"],
                "seq": spec["seq"],
                "grad_accum": 1,
                "dtype": spec["dtype"],
                "eval_every": 0,
                "ckpt_every": 0,
                "log_every": 1,
                "progress": False,
                "tensorboard": False,
                "resume": False,
                "spike_factor": 0.0,
                "spike_norm_factor": 0.0,
                "dist_timeout_s": 120.0,
                "out_dir": out_dir,
            },
            "parallel": {
                "pp": 2,
                "dp_shard": 1,
                "pp_schedule": spec["schedule"],
                "pp_microbatches": spec["m"],
            },
        }
    )


def timed(events: list, kind: str, fn):
    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            events.append((kind, t0, time.perf_counter()))

    return wrapped


def p2p_seconds(shape: tuple[int, ...], rank: int, reps: int = 10) -> float:
    """One-way time of one micro-batch's activation (fp32) between the two
    stages over gloo: the median of ``reps`` round trips, halved."""
    x = torch.zeros(shape)
    times = []
    for _ in range(reps + 1):
        dist.barrier()
        t0 = time.perf_counter()
        if rank == 0:
            dist.send(x, 1)
            dist.recv(x, 1)
        else:
            dist.recv(x, 0)
            dist.send(x, 0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) / 2


def worker(spec: dict[str, Any]) -> None:
    from fastllm.parallel import teardown
    from fastllm.train import TokenStream, Trainer

    cfg = train_config(spec, tempfile.mkdtemp(prefix="bench_bubble_"))
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, spec["vocab"], (spec["batch"] * spec["seq"] * 8 + 1,), generator=g)
    trainer = Trainer(cfg, TokenStream.factory(tokens), None, log=lambda _: None)
    runner = trainer.engine.runner
    events: list[tuple[str, float, float]] = []
    stage, schedule = runner.stage, runner.schedule
    stage.forward_one_chunk = timed(events, "F", stage.forward_one_chunk)
    stage.backward_one_chunk = timed(events, "B", stage.backward_one_chunk)
    schedule._maybe_compute_loss = timed(events, "L", schedule._maybe_compute_loss)

    # One clock? Read it on every rank right after a barrier; the smallest
    # spread of a few tries bounds any offset between the ranks' clocks.
    spreads = []
    for _ in range(5):
        dist.barrier()
        now = torch.tensor([time.perf_counter()], dtype=torch.float64)
        clocks = [torch.zeros(1, dtype=torch.float64) for _ in range(dist.get_world_size())]
        dist.all_gather(clocks, now)
        spreads.append(float(max(c.item() for c in clocks) - min(c.item() for c in clocks)))

    trainer.train_step()  # warm-up: shape inference, allocations
    p2p = p2p_seconds((spec["batch"] // spec["m"], spec["seq"], spec["dim"]), trainer.mesh.pp_rank)
    steps = []
    for _ in range(spec["steps"]):
        events.clear()
        dist.barrier()  # both stages start the step together
        t0 = time.perf_counter()
        trainer.train_step()
        steps.append({"step_s": time.perf_counter() - t0, "events": list(events)})
    result = {
        "rank": trainer.dist.rank,
        "stage": trainer.mesh.pp_rank,
        "clock_skew_s": min(spreads),
        "p2p_s": p2p,
        "clock": str(time.get_clock_info("perf_counter")),
        "steps": steps,
    }
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")  # one write: lines do not interleave
    sys.stdout.flush()
    teardown()
    sys.stdout.flush()
    os._exit(0)


# ---- the parent ------------------------------------------------------------------


def torchrun(nproc: int, spec: dict[str, Any], timeout: int) -> tuple[list[dict], str]:
    exe = Path(sys.executable).with_name("torchrun")
    launcher = [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    wrap = [shutil.which("timeout"), str(timeout)] if shutil.which("timeout") else []
    cmd = [*wrap, *launcher, "--standalone", "--nproc_per_node", str(nproc), __file__]
    cmd += ["--worker", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout + 30)
    lines = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return sorted(lines, key=lambda r: r["stage"]), (proc.stdout + proc.stderr)[-3000:]


def bubble(p: int, m: int) -> float:
    from fastllm.model.plan import bubble_fraction

    return bubble_fraction(p, m)


def ops_of(events: list) -> list[tuple[str, int, float]]:
    """A stage's compute in the order it ran: (F or B, micro-batch, seconds);
    the loss (L, last stage) joins the forward before it. Both schedules run
    the forwards in micro-batch order and the backwards too."""
    ops: list[tuple[str, int, float]] = []
    seen = {"F": 0, "B": 0}
    for kind, t0, t1 in events:
        if kind == "L":
            k, i, d = ops[-1]
            ops[-1] = (k, i, d + t1 - t0)
            continue
        ops.append((kind, seen[kind], t1 - t0))
        seen[kind] += 1
    return ops


def waits(evs: list[list]) -> list[float]:
    """How long each op started after it could have (after the stage's
    previous op and the op it depends on ended): the delay communication and
    the schedule's bookkeeping add, op by op."""
    p = len(evs)
    end: dict[tuple[str, int, int], float] = {}
    timed_ops = []
    for s, ev in enumerate(evs):
        seen, prev, ops = {"F": 0, "B": 0}, None, []
        for kind, t0, t1 in ev:
            if kind == "L":  # the loss on the last stage; a no-op call elsewhere
                if s == p - 1:
                    end[ops[-1][:2] + (s,)] = t1
                    prev = t1
                continue
            ops.append((kind, seen[kind], t0, prev))
            end[(kind, seen[kind], s)] = t1
            seen[kind] += 1
            prev = t1
        timed_ops.append(ops)
    out = []
    for s, ops in enumerate(timed_ops):
        for kind, i, t0, prev in ops:
            dep = end.get((kind, i, s - 1) if kind == "F" else (kind, i, s + 1))
            ready = [x for x in (prev, dep) if x is not None]
            if ready:
                out.append(t0 - max(ready))
    return out


def simulate(stage_ops: list[list[tuple[str, int, float]]]) -> list[float]:
    """Idle fraction per stage of the same ops in the same order with free
    communication and no overhead: F(s, i) waits for F(s - 1, i), B(s, i) for
    B(s + 1, i), each stage runs one op at a time."""
    p = len(stage_ops)
    done: dict[tuple[str, int, int], float] = {}
    clock, pos = [0.0] * p, [0] * p
    while any(pos[s] < len(stage_ops[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            if pos[s] == len(stage_ops[s]):
                continue
            kind, i, d = stage_ops[s][pos[s]]
            dep = (kind, i, s - 1) if kind == "F" else (kind, i, s + 1)
            if 0 <= dep[2] < p and dep not in done:
                continue
            start = max(clock[s], done.get(dep, 0.0))
            clock[s] = done[(kind, i, s)] = start + d
            pos[s] += 1
            progressed = True
        if not progressed:
            raise RuntimeError("the recorded ops do not form a pipeline schedule")
    window = max(clock)
    return [1 - sum(d for _, _, d in ops) / window for ops in stage_ops]


def analyse(stages: list[dict]) -> dict[str, Any]:
    """Idle fraction per stage per step over the window of both stages' compute,
    and what the same compute would give with free communication."""
    p = len(stages)
    idle: list[list[float]] = [[] for _ in range(p)]
    sim: list[list[float]] = [[] for _ in range(p)]
    windows: list[float] = []
    fwd: list[list[float]] = [[] for _ in range(p)]
    bwd: list[list[float]] = [[] for _ in range(p)]
    late: list[float] = []
    for k in range(len(stages[0]["steps"])):
        evs = [s["steps"][k]["events"] for s in stages]
        start = min(e[1] for ev in evs for e in ev)
        end = max(e[2] for ev in evs for e in ev)
        windows.append(end - start)
        stage_ops = [ops_of(ev) for ev in evs]
        late += waits(evs)
        for i, ev in enumerate(evs):
            idle[i].append(1 - sum(e[2] - e[1] for e in ev) / (end - start))
            fwd[i] += [d for kind, _, d in stage_ops[i] if kind == "F"]
            bwd[i] += [d for kind, _, d in stage_ops[i] if kind == "B"]
        for i, x in enumerate(simulate(stage_ops)):
            sim[i].append(x)
    return {
        "idle": [statistics.mean(x) for x in idle],
        "idle_steps": idle,
        "simulated": [statistics.mean(x) for x in sim],
        "window_s": windows,
        "forward_s": [statistics.median(x) for x in fwd],
        "backward_s": [statistics.median(x) for x in bwd],
        "waits_s": late,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--schedules", default="gpipe,1f1b")
    ap.add_argument("--microbatches", default="2,4,8")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument(
        "--batch", type=int, default=16, help="global batch in sequences (fixed over m)"
    )
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--steps", type=int, default=4, help="measured steps after one warm-up step")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per torchrun")
    ap.add_argument("--out", default="runs/bench_pipeline_bubble")
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    p = 2
    print(
        f"model: dim {args.dim}, {args.layers} layers ({args.layers // p} a stage), vocab {args.vocab}; "
        f"global batch {args.batch} × {args.seq}, {args.dtype}, pp {p}, 1 thread a stage; "
        f"{args.steps} steps after 1 warm-up"
    )
    rows: list[dict[str, Any]] = []
    for schedule in args.schedules.split(","):
        for m in map(int, args.microbatches.split(",")):
            row: dict[str, Any] = {"schedule": schedule, "p": p, "m": m, "formula": bubble(p, m)}
            rows.append(row)
            if args.batch % m:
                row["status"] = f"skipped: {m} does not divide batch {args.batch}"
                print(f"{schedule:5} m={m}: {row['status']}")
                continue
            spec = {
                **{k: v for k, v in vars(args).items() if k != "worker"},
                "schedule": schedule,
                "m": m,
            }
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            stages, tail = torchrun(p, spec, args.timeout)
            wall = time.perf_counter() - t0
            if [s["stage"] for s in stages] != list(range(p)):
                row["status"] = "failed"
                row["output_tail"] = tail
                print(f"{schedule:5} m={m}: FAILED\n{tail}", flush=True)
                continue
            row.update(status="ok", wall_s=wall, load=load, **analyse(stages))
            row["clock_skew_s"] = max(s["clock_skew_s"] for s in stages)
            row["p2p_s"] = stages[0]["p2p_s"]
            row["clock"] = stages[0]["clock"]
            row["step_s"] = [s["step_s"] for s in stages[0]["steps"]]
            row["events"] = [s["steps"] for s in stages]
            print(
                f"{schedule:5} m={m}: idle {' / '.join(f'{x:.1%}' for x in row['idle'])}, "
                f"window {statistics.mean(row['window_s']):.2f} s, "
                f"step {statistics.mean(row['step_s']):.2f} s [{wall:.0f} s]",
                flush=True,
            )

    ok = [r for r in rows if r["status"] == "ok"]
    print()
    print(
        "| schedule | p | m | idle stage 0 | idle stage 1 | mean | formula (p−1)/(m+p−1) "
        "| same compute, free comm (0 / 1) | comm + overhead | p2p of one activation (ms) | ops late > 10 ms / step, worst (ms) | window (s) | fwd / bwd per micro-batch (s, stage 0; 1) | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['schedule']} | {r['p']} | {r['m']} | {r['status']} |" + " |" * 10)
            continue
        i0, i1 = r["idle"]
        f, b = r["forward_s"], r["backward_s"]
        print(
            f"| {r['schedule']} | {r['p']} | {r['m']} | {i0:.1%} | {i1:.1%} | {(i0 + i1) / 2:.1%} "
            f"| {r['formula']:.1%} | {r['simulated'][0]:.1%} / {r['simulated'][1]:.1%} "
            f"| {(i0 + i1 - sum(r['simulated'])) / 2:+.1%} | {r['p2p_s'] * 1e3:.2f} "
            f"| {sum(w > 0.01 for w in r['waits_s']) / len(r['window_s']):.1f}, "
            f"{max(r['waits_s']) * 1e3:.0f} "
            f"| {statistics.mean(r['window_s']):.2f} "
            f"| {f[0]:.3f} / {b[0]:.3f}; {f[1]:.3f} / {b[1]:.3f} | {r['load']:.1f} |"
        )
    if ok:
        skew = max(r["clock_skew_s"] for r in ok)
        print(
            f"\nclock: {ok[0]['clock']}; smallest spread of a read just after a barrier: {skew * 1e6:.0f} µs"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import fastllm

    record = {
        "command": " ".join([sys.executable, *sys.argv]),
        "args": vars(args),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "fastllm": getattr(fastllm, "__version__", None),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load": os.getloadavg(),
        },
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"results: {out / 'results.json'}")
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
