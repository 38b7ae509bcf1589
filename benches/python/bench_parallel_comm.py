"""Communication per rank per training step, counted, against ZeRO's table.

    python benches/python/bench_parallel_comm.py [--nproc 2,4] [--modes ddp,zero1,zero2,zero3,tp,tp_sp]
        [--dim 128] [--layers 4] [--vocab 512] [--batch 8] [--seq 32] [--out runs/bench_parallel_comm]

Each mode runs the fastllm Trainer under ``torchrun`` (gloo, CPU, one thread a
rank) on a small Llama-style decoder with untied embeddings, ``grad_accum``
1: one warm-up step, then one counted step. Every collective of the counted
step on every rank goes through a ``TorchDispatchMode`` that sees the c10d
ops (``c10d::allreduce_``, ``_reduce_scatter_base_``, ``_allgather_base_``,
``broadcast_``, ``send``, ...) and the functional collectives DTensor uses
(``_c10d_functional::all_reduce``, ...). C++ callers go through the same
dispatcher, so DDP's reducer buckets are seen as well as FSDP2's and
DTensor's collectives (``torch.profiler`` on gloo names the ops but not the
process group, and no ``record_param_comms`` event is emitted there). The
counter is checked first on a hand-made case (one all-reduce, reduce-scatter,
all-gather, broadcast, send/recv of known tensors, a DDP bucket and a DTensor
redistribute) and the bench stops if it does not see exactly those.

From each collective's full tensor S (bytes; for a reduce-scatter its input,
for an all-gather its output) and group size N, the bytes a rank sends under
a ring algorithm: all-reduce 2(N-1)/N·S, reduce-scatter and all-gather
(N-1)/N·S, broadcast (a chain) (N-1)/N·S on average, send S, recv 0.

The data-parallel table compares the bytes of the step's parameter-sized
collectives ("bulk": each moves at least 1% of Φ) with Φ (parameters × bytes
of the reduce dtype) and the seeds' multiple (DDP 2Φ, ZeRO-1 2Φ, ZeRO-2 2Φ,
ZeRO-3 3Φ), i.e. 2Φ·(N-1)/N etc. on a ring. What was measured (default
model, N = 2 and 4) matches to the byte:

- DDP: the reducer's two buckets all-reduce exactly the Φ gradients.
- ZeRO-2 (FSDP2, ``reshard_after_forward=False``): one all-gather per group
  (each block, then the root: embedding, final norm, head) in forward, one
  reduce-scatter per group in backward. The updated shards are gathered at
  the next step's forward, not after the optimizer step as in the paper;
  per step it is the same Φ + Φ.
- ZeRO-3: the same, plus every group gathered again in backward — the root
  too, since fastllm passes ``reshard_after_forward=True`` to the root as
  well (FSDP2's default, ``None``, keeps the root gathered from forward to
  backward: one all-gather of the root's parameters less, 131,200 of the
  935,040 here, i.e. 3Φ - Φ_root).
- No padding shows: every parameter's first dimension divides by N here
  (FSDP2 pads it to a multiple of N otherwise).

The collectives left ("small") are the loop's own: the all-reduce of the
step's target-token count and of the loss sums (8 bytes each), the gradient
norm (under FSDP2 one all-reduce of the 39 per-parameter norms), and, under
DDP, the broadcast of the module's buffers at each forward (the RoPE tables,
2048 floats, and two int32 size broadcasts).

Gloo itself runs ``reduce_scatter_tensor`` as an all-reduce of the full
input followed by a local copy (its profiler event is ``gloo:all_reduce``
with the input's shape), so on gloo the wire bytes of a reduce-scatter are
those of an all-reduce; the table counts the ring (NCCL-like) algorithm that
the ZeRO paper assumes, and the last column ("gloo") counts reduce-scatters
as all-reduces.

The tensor-parallel table counts the collectives per transformer block, in
forward and in backward (blocks found by forward hooks and by gradient hooks
on each block's output), beside Megatron's 2 all-reduces per layer forward
(after ``wo`` and ``w2``) and 2 backward (at the attention's and the MLP's
input); with sequence parallelism each becomes an all-gather and a
reduce-scatter. Measured: exactly that, with the bytes per block of
2·2(N-1)/N·b·s·d·4. Outside the blocks: the vocabulary-parallel embedding's
all-reduce (forward; RS under SP, AG in its backward), the head's all-gather
of the logits (forward) and its input's all-reduce (backward; AG forward and
RS backward under SP); the gradient norm's all-reduce per placement group
(2). Under sequence parallelism the 9 norm weights (replicated parameters,
inputs sharded by sequence) keep *partial* gradients: each is all-reduced
when the gradient norm reads it and again at each of AdamW's three uses
(``clip: 9 AR``, ``optimizer: 27 AR`` of 128 floats) — 36 collectives a step
where one all-reduce of the norms' gradients after backward would do.

``parallel.zero = 1`` is in the mode list but runs only where the config
accepts it (the table says "not available" otherwise). Writes
<out>/results.json (every collective of rank 0, per-rank totals, the
command, versions and machine) and prints the tables.
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
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

# name -> ([parallel] overrides given N ranks, the seeds' multiple of Φ or None)
MODES: dict[str, tuple[Any, float | None]] = {
    "ddp": (lambda n: {"dp_replicate": n, "dp_shard": 1}, 2.0),
    "zero1": (lambda n: {"zero": 1}, 2.0),
    "zero2": (lambda n: {"dp_shard": n, "zero": 2}, 2.0),
    "zero3": (lambda n: {"dp_shard": n, "zero": 3}, 3.0),
    # Muon on the same layouts: ZeRO-1's owners hold whole matrices (no extra
    # traffic); under ZeRO-3 each matrix goes to its owner and back (gather + scatter).
    "zero1_muon": (lambda n: {"zero": 1}, 2.0),
    "zero3_muon": (lambda n: {"dp_shard": n, "zero": 3}, 3.0),
    "zero3_muon_gather_all": (lambda n: {"dp_shard": n, "zero": 3}, 3.0),
    "tp": (lambda n: {"dp_shard": 1, "tp": n, "sequence_parallel": False}, None),
    "tp_sp": (lambda n: {"dp_shard": 1, "tp": n, "sequence_parallel": True}, None),
}
SHORT = {
    "all_reduce": "AR",
    "reduce_scatter": "RS",
    "all_gather": "AG",
    "broadcast": "BC",
    "send": "send",
    "recv": "recv",
    "all_to_all": "A2A",
}
PHASES = ("before", "forward", "backward", "metrics", "clip", "optimizer")
BULK = 0.01  # a collective moving >= 1% of Φ is parameter-sized


# ---- the counter ---------------------------------------------------------------


def _group(x: Any) -> Any:
    """A process group from a c10d op's ScriptObject or a functional op's name."""
    if isinstance(x, str):
        from torch.distributed.distributed_c10d import _resolve_process_group

        return _resolve_process_group(x)
    return dist.ProcessGroup.unbox(x)


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _tensors(y)]
    return []


def _nbytes(ts: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


# op name -> (kind, argument index of the full tensor(s), how S follows from them
# ("same": S is their size, "times_n": S = N x their size), argument index of the group)
C10D = {
    "allreduce_": ("all_reduce", 0, "same", 1),
    "allreduce_coalesced_": ("all_reduce", 0, "same", 1),
    "_reduce_scatter_base_": ("reduce_scatter", 1, "same", 2),
    "reduce_scatter_": ("reduce_scatter", 1, "same", 2),
    "reduce_scatter_tensor_coalesced_": ("reduce_scatter", 1, "same", 2),
    "_allgather_base_": ("all_gather", 0, "same", 2),
    "allgather_": ("all_gather", 1, "times_n", 2),
    "allgather_coalesced_": ("all_gather", 1, "times_n", 2),
    "allgather_into_tensor_coalesced_": ("all_gather", 0, "same", 2),
    "broadcast_": ("broadcast", 0, "same", 1),
    "alltoall_": ("all_to_all", 1, "same", 2),
    "alltoall_base_": ("all_to_all", 1, "same", 2),
    "send": ("send", 0, "same", 1),
    "recv_": ("recv", 0, "same", 1),
    "reduce_": ("reduce", 0, "same", 1),
    "gather_": ("gather", 1, "same", 2),
    "scatter_": ("scatter", 0, "same", 2),
}
FUNCTIONAL = {
    "all_reduce": ("all_reduce", 0, "same", 2),
    "all_reduce_": ("all_reduce", 0, "same", 2),
    "all_reduce_coalesced": ("all_reduce", 0, "same", 2),
    "all_reduce_coalesced_": ("all_reduce", 0, "same", 2),
    "reduce_scatter_tensor": ("reduce_scatter", 0, "same", 3),
    "reduce_scatter_tensor_coalesced": ("reduce_scatter", 0, "same", 3),
    "reduce_scatter_tensor_out": ("reduce_scatter", 0, "same", 3),
    "all_gather_into_tensor": ("all_gather", 0, "times_n", 2),
    "all_gather_into_tensor_coalesced": ("all_gather", 0, "times_n", 2),
    "all_gather_into_tensor_out": ("all_gather", 0, "times_n", 2),
    "all_to_all_single": ("all_to_all", 0, "same", 3),
    "broadcast": ("broadcast", 0, "same", 2),
    "broadcast_": ("broadcast", 0, "same", 2),
}


def ring_bytes(kind: str, s: int, n: int) -> float:
    """Bytes one rank sends for a collective of full size ``s`` over ``n`` ranks."""
    if n <= 1:
        return 0.0
    if kind == "all_reduce":
        return 2 * (n - 1) / n * s
    if kind in (
        "reduce_scatter",
        "all_gather",
        "broadcast",
        "all_to_all",
        "reduce",
        "gather",
        "scatter",
    ):
        return (n - 1) / n * s
    return float(s) if kind == "send" else 0.0


class CommCounter(TorchDispatchMode):
    """Records every collective that reaches the dispatcher while active: its
    kind, full tensor size, dtype, group size, and the phase and module the
    caller set (``phase``, ``where``)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []
        self.phase = "-"
        self.where = "-"
        self.on = True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **kwargs)
        from torch.distributed.tensor import DTensor

        if any(issubclass(t, DTensor) for t in types):
            return NotImplemented  # let DTensor lower itself to collectives first
        out = func(*args, **kwargs)
        table = {"c10d": C10D, "_c10d_functional": FUNCTIONAL}.get(func.namespace)
        name = func._overloadpacket.__name__
        if self.on and table is not None and name in table:
            kind, arg, how, garg = table[name]
            ts = _tensors(args[arg])
            group = _group(args[garg])
            n = group.size()
            s = _nbytes(ts) * (n if how == "times_n" else 1)
            self.records.append(
                {
                    "op": kind,
                    "call": f"{func.namespace}::{name}",
                    "phase": self.phase,
                    "where": self.where,
                    "dtype": str(ts[0].dtype).removeprefix("torch.") if ts else "-",
                    "numel": s // ts[0].element_size() if ts else 0,
                    "full_bytes": s,
                    "group": n,
                    "sent": ring_bytes(kind, s, n),
                }
            )
        return out


# ---- the hand-made check -------------------------------------------------------


def check_counter() -> dict[str, Any]:
    """Known collectives under the counter; returns what it saw and whether
    that is what was issued."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate

    n, rank = dist.get_world_size(), dist.get_rank()
    mesh = init_device_mesh("cpu", (n,))
    lin = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(10, 10))  # 110 parameters
    x = torch.randn(3, 10)
    with CommCounter() as c:
        dist.all_reduce(torch.ones(1000))
        dist.reduce_scatter_tensor(torch.empty(1000 // n), torch.ones(1000 // n * n))
        dist.all_gather_into_tensor(torch.empty(250 * n), torch.ones(250))
        dist.broadcast(torch.ones(64, dtype=torch.bfloat16), src=0)
        if rank == 0:
            dist.send(torch.ones(7), 1)
        elif rank == 1:
            dist.recv(torch.empty(7), 0)
        c.phase = "ddp"
        lin(x).sum().backward()
        c.phase = "dtensor"
        DTensor.from_local(torch.ones(100), mesh, [Partial()]).redistribute(mesh, [Replicate()])
    want = [
        ("all_reduce", "float32", 1000, 2 * (n - 1) / n * 4000),
        ("reduce_scatter", "float32", 1000 // n * n, (n - 1) / n * 4 * (1000 // n * n)),
        ("all_gather", "float32", 250 * n, (n - 1) / n * 4 * 250 * n),
        ("broadcast", "bfloat16", 64, (n - 1) / n * 128),
    ]
    want += [("send", "float32", 7, 28.0)] if rank == 0 else []
    want += [("recv", "float32", 7, 0.0)] if rank == 1 else []
    want += [("all_reduce", "float32", 110, 2 * (n - 1) / n * 440)]  # the DDP bucket
    want += [("all_reduce", "float32", 100, 2 * (n - 1) / n * 400)]  # Partial -> Replicate
    got = [(r["op"], r["dtype"], r["numel"], r["sent"]) for r in c.records]
    ok = len(got) == len(want) and all(
        g[:3] == w[:3] and abs(g[3] - w[3]) < 1e-6 for g, w in zip(got, want, strict=True)
    )
    ok = ok and all(r["group"] == n for r in c.records)
    return {"ok": ok, "got": got, "want": want}


# ---- one mode under torchrun (the worker) ----------------------------------------


def _muon_scheme(mode: str) -> str | None:
    """The ``optim.muon_sharded`` of a ``*_muon`` mode (None: AdamW)."""
    if mode.endswith("_muon_gather_all"):
        return "gather_all"
    return "owner" if mode.endswith("_muon") else None


def train_config(spec: dict[str, Any], out_dir: str):
    from fastllm.train import TrainConfig

    return TrainConfig.from_dict(
        {
            "model": {
                "vocab_size": spec["vocab"],
                "dim": spec["dim"],
                "n_layers": spec["layers"],
                "n_heads": spec["heads"],
                "n_kv_heads": spec["kv_heads"],
                "max_seq_len": spec["seq"],
                "tie_embeddings": False,
            },
            "optim": (
                {
                    "name": "muon",
                    "lr": 1e-3,
                    "muon_lr": 0.02,
                    "weight_decay": 0.0,
                    "muon_sharded": spec["muon"],
                }
                if spec.get("muon")
                else {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}
            ),
            "schedule": {"name": "constant", "warmup_steps": 0},
            "train": {
                "steps": 2,
                "batch": spec["batch"],
                "seq": spec["seq"],
                "grad_accum": 1,
                "dtype": "fp32",
                "eval_every": 0,
                "ckpt_every": 0,
                "log_every": 1,
                "progress": False,
                "tensorboard": False,
                "resume": False,
                "dist_timeout_s": 120.0,
                "out_dir": out_dir,
            },
            "parallel": spec["parallel"],
        }
    )


def mark_phases(trainer, counter: CommCounter) -> None:
    """Phase of each collective ("before": the step's token count, "forward",
    "backward", "metrics": the loss sums, "clip": the gradient norm,
    "optimizer": the update) and block ("layers.i" or "outside"), by wrapping
    the engine's methods on the instance and hooking the blocks: forward
    pre/post hooks, and gradient hooks on each block's output (a block's
    backward starts when its output's gradient is complete) and on the first
    block's input (where the embedding's backward starts)."""
    engine = trainer.engine

    def wrap(method: str, phase: str, then: str) -> None:
        inner = getattr(engine, method)

        def wrapped(*a, **k):
            counter.phase, counter.where = phase, "outside"
            try:
                return inner(*a, **k)
            finally:
                counter.phase, counter.where = then, "outside"

        setattr(engine, method, wrapped)

    wrap("micro_step", "forward", "metrics")
    wrap("backward", "backward", "metrics")
    wrap("clip_grad_norm", "clip", "optimizer")
    wrap("step", "optimizer", "-")
    names = list(trainer.model.layers.keys())

    def setter(where: str):
        def hook(grad):
            counter.where = where
            return grad

        return hook

    for name, block in trainer.model.layers.items():

        def pre(_m, args, _name=name):
            if counter.phase == "forward":
                counter.where = f"layers.{_name}"
            x = args[0]
            if _name == names[0] and isinstance(x, torch.Tensor) and x.requires_grad:
                x.register_hook(setter("outside"))

        def post(_m, _args, out, _name=name):
            if counter.phase == "forward":
                counter.where = "outside"
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out.register_hook(setter(f"layers.{_name}"))

        block.register_forward_pre_hook(pre)
        block.register_forward_hook(post)


def worker(spec: dict[str, Any]) -> None:
    from fastllm.parallel import teardown
    from fastllm.train import TokenStream, Trainer

    cfg = train_config(spec, tempfile.mkdtemp(prefix="bench_comm_"))
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, spec["vocab"], (spec["batch"] * spec["seq"] * 8 + 1,), generator=g)
    trainer = Trainer(cfg, TokenStream.factory(tokens), None, log=lambda _: None)
    result: dict[str, Any] = {"rank": trainer.dist.rank, "world": trainer.dist.world_size}
    if spec.get("check"):
        result["check"] = check_counter()
    counter = CommCounter()
    mark_phases(trainer, counter)
    with counter:
        counter.on = False
        trainer.train_step()  # warm-up: lazy init, first all-gathers, optimizer state
        counter.on, counter.phase, counter.where = True, "before", "outside"
        t0 = time.perf_counter()
        record = trainer.train_step()
        result["step_s"] = time.perf_counter() - t0
    result["loss"] = record["loss"]
    result["records"] = counter.records
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
    return sorted(lines, key=lambda r: r["rank"]), (proc.stdout + proc.stderr)[-3000:]


def num_params(spec: dict[str, Any]) -> int:
    from fastllm.model import Decoder, ModelConfig

    cfg = ModelConfig(
        vocab_size=spec["vocab"],
        dim=spec["dim"],
        n_layers=spec["layers"],
        n_heads=spec["heads"],
        n_kv_heads=spec["kv_heads"],
        max_seq_len=spec["seq"],
        tie_embeddings=False,
    )
    with torch.device("meta"):
        return Decoder(cfg).num_params()


def zero1_available() -> tuple[bool, str]:
    from fastllm.config import ConfigError
    from fastllm.parallel import ParallelConfig

    try:
        ParallelConfig.from_dict({"zero": 1})
    except ConfigError as e:
        return False, str(e)
    return True, ""


def summarize(ranks: list[dict], phi: int, elem: int, n: int) -> dict[str, Any]:
    """Bytes sent per rank by op (rank 0; the largest over ranks beside it)."""
    out: dict[str, Any] = {"per_rank_total": [sum(r["sent"] for r in x["records"]) for x in ranks]}
    recs = ranks[0]["records"]
    by_op: dict[str, float] = defaultdict(float)
    gloo = 0.0
    bulk = small = 0.0
    n_small = 0
    for r in recs:
        by_op[r["op"]] += r["sent"]
        gloo += (
            ring_bytes("all_reduce", r["full_bytes"], r["group"])
            if r["op"] == "reduce_scatter"
            else r["sent"]
        )
        if r["numel"] >= BULK * phi:
            bulk += r["sent"]
        else:
            small += r["sent"]
            n_small += 1
    out.update(
        by_op=dict(by_op),
        total=sum(by_op.values()),
        gloo_total=gloo,
        bulk=bulk,
        small=small,
        small_count=n_small,
        count=len(recs),
        phi_bytes=phi * elem,
    )
    return out


def tp_counts(recs: list[dict], layers: list[str]) -> dict[str, Any]:
    """Collectives per block in forward and backward, and outside the blocks."""
    table: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    bytes_: dict[str, float] = defaultdict(float)
    for r in recs:
        place = "block" if r["where"].startswith("layers.") else "outside"
        key = f"{r['phase']}/{place}"
        table[key][r["where"]][r["op"]] += 1
        bytes_[key] += r["sent"]
    per_layer = {}
    for phase in ("forward", "backward"):
        blocks = table.get(f"{phase}/block", {})
        counts = [dict(blocks.get(f"layers.{name}", {})) for name in layers]
        same = all(c == counts[0] for c in counts)
        per_layer[phase] = {"each": counts[0] if same else None, "by_layer": counts}
    outside = {
        k: dict(v["outside"]) for k, v in table.items() if k.endswith("/outside") and "outside" in v
    }
    return {"per_layer": per_layer, "outside": outside, "bytes": dict(bytes_)}


def fmt_ops(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "differs by layer"
    if not counts:
        return "-"
    return " + ".join(f"{v} {SHORT.get(k, k)}" for k, v in sorted(counts.items()))


def fmt_bytes(b: float) -> str:
    return f"{b / 1e6:.3f} MB" if b >= 1e5 else f"{b / 1e3:.2f} kB" if b >= 100 else f"{b:.0f} B"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--nproc", default="2,4", help="ranks per run, comma-separated")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=4, help="4 allows tp = 4")
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8, help="global batch in sequences")
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument(
        "--reduce-dtype",
        choices=("fp32", "bf16"),
        default="fp32",
        help="FSDP2 param_dtype and reduce_dtype (DDP reduces fp32 gradients)",
    )
    ap.add_argument("--timeout", type=int, default=180, help="seconds per torchrun")
    ap.add_argument("--out", default="runs/bench_parallel_comm")
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    base = {
        "dim": args.dim,
        "layers": args.layers,
        "heads": args.heads,
        "kv_heads": args.kv_heads,
        "vocab": args.vocab,
        "batch": args.batch,
        "seq": args.seq,
    }
    phi = num_params(base)
    elem = 2 if args.reduce_dtype == "bf16" else 4
    z1, z1_why = zero1_available()
    print(
        f"model: dim {args.dim}, {args.layers} layers, vocab {args.vocab}, untied; Φ = {phi:,} parameters"
    )
    print(
        f"batch {args.batch} × {args.seq}, grad_accum 1, fp32 compute, reduce dtype {args.reduce_dtype}"
    )
    rows: list[dict[str, Any]] = []
    checked = False
    for n in map(int, args.nproc.split(",")):
        for mode in args.modes.split(","):
            overrides, seeds = MODES[mode]
            row: dict[str, Any] = {"mode": mode, "nproc": n, "seeds": seeds}
            rows.append(row)
            if mode.startswith("zero1") and not z1:
                row["status"] = "not available"
                row["why"] = z1_why
                print(f"{mode:6} N={n}: not available ({z1_why})", flush=True)
                continue
            par = overrides(n)
            if mode.startswith("tp") and (args.heads % n or args.kv_heads % n):
                row["status"] = (
                    f"skipped: heads {args.heads}/{args.kv_heads} not divisible by tp {n}"
                )
                print(f"{mode:6} N={n}: {row['status']}", flush=True)
                continue
            if not mode.startswith("tp") and args.reduce_dtype == "bf16":
                par = {**par, "param_dtype": "bf16", "reduce_dtype": "bf16"}
            spec = {**base, "parallel": par, "check": not checked, "muon": _muon_scheme(mode)}
            t0 = time.perf_counter()
            ranks, tail = torchrun(n, spec, args.timeout)
            wall = time.perf_counter() - t0
            if [r["rank"] for r in ranks] != list(range(n)):
                row["status"] = "failed"
                row["output_tail"] = tail
                print(f"{mode:6} N={n}: FAILED\n{tail}", flush=True)
                continue
            if spec["check"]:
                checks = [r["check"] for r in ranks]
                checked = True
                print(
                    f"counter check on {n} ranks: {'ok' if all(c['ok'] for c in checks) else 'FAILED'}"
                )
                if not all(c["ok"] for c in checks):
                    print(json.dumps(checks, indent=1))
                    return 1
                row["check"] = checks
            row.update(status="ok", parallel=par, wall_s=wall, step_s=[r["step_s"] for r in ranks])
            row["summary"] = summarize(ranks, phi, elem, n)
            row["records_rank0"] = ranks[0]["records"]
            if mode.startswith("tp"):
                row["tp"] = tp_counts(ranks[0]["records"], [str(i) for i in range(args.layers)])
            per_rank = row["summary"]["per_rank_total"]
            same = (
                "the same on every rank"
                if max(per_rank) - min(per_rank) < 1
                else f"per rank {per_rank}"
            )
            print(
                f"{mode:6} N={n}: {row['summary']['count']} collectives, "
                f"{fmt_bytes(row['summary']['total'])} sent by rank 0, {same} [{wall:.0f} s]",
                flush=True,
            )

    print()
    print(
        f"Data parallel: bytes sent per rank in one step (ring algorithm; Φ = {phi:,} × {elem} B = "
        f"{fmt_bytes(phi * elem)})"
    )
    print()
    print(
        "| mode | N | Φ-bytes | all-reduce | reduce-scatter | all-gather | broadcast "
        "| reduce, gather, scatter | bulk / Φ-bytes "
        "| seeds × (N−1)/N | small (count, bytes) | total / Φ-bytes | gloo / Φ-bytes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if row["mode"].startswith("tp"):
            continue
        if row["status"] != "ok":
            print(
                f"| {row['mode']} | {row['nproc']} | {fmt_bytes(phi * elem)} | {row['status']} |"
                + " |" * 9
            )
            continue
        s, n = row["summary"], row["nproc"]
        ops = [
            fmt_bytes(s["by_op"].get(k, 0.0))
            for k in ("all_reduce", "reduce_scatter", "all_gather", "broadcast")
        ]
        ops.append(fmt_bytes(sum(s["by_op"].get(k, 0.0) for k in ("reduce", "gather", "scatter"))))
        pb = s["phi_bytes"]
        print(
            f"| {row['mode']} | {n} | {fmt_bytes(pb)} | {' | '.join(ops)} | {s['bulk'] / pb:.3f} "
            f"| {row['seeds']:g} × {n - 1}/{n} = {row['seeds'] * (n - 1) / n:.3f} "
            f"| {s['small_count']}, {fmt_bytes(s['small'])} | {s['total'] / pb:.3f} | {s['gloo_total'] / pb:.3f} |"
        )
    if elem == 2:
        print(
            "(DDP reduces its fp32 gradients: parallel.reduce_dtype is FSDP2's knob, so its row is 2× here)"
        )
    for row in rows:  # Muon's traffic over AdamW's on the same layout (issue 14: <= 1.25)
        base_row = next(
            (
                r
                for r in rows
                if r["mode"] == row["mode"].split("_muon")[0] and r["nproc"] == row["nproc"]
            ),
            None,
        )
        if "_muon" in row["mode"] and row["status"] == "ok" and base_row:
            if base_row["status"] == "ok":
                ratio = row["summary"]["total"] / base_row["summary"]["total"]
                print(f"Muon / AdamW bytes, {row['mode']} N={row['nproc']}: {ratio:.3f}")
    tp_rows = [r for r in rows if r["mode"].startswith("tp")]
    if tp_rows:
        print()
        print(
            "Tensor parallel: collectives per transformer block (rank 0), expected 2 per layer "
            "forward and 2 backward (Megatron; with SP each all-reduce = RS + AG)"
        )
        print()
        print(
            "| mode | N | forward / block | backward / block | expected / block | outside the blocks "
            "| fwd bytes / block (2·2(N−1)/N·b·s·d·4) | total sent / step |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for row in tp_rows:
            if row["status"] != "ok":
                print(f"| {row['mode']} | {row['nproc']} | {row['status']} |" + " |" * 5)
                continue
            t, n = row["tp"], row["nproc"]
            sp = row["parallel"]["sequence_parallel"]
            expected = "2 AG + 2 RS fwd and bwd" if sp else "2 AR fwd, 2 AR bwd"
            outside = "; ".join(
                f"{ph}: {fmt_ops(t['outside'][ph + '/outside'])}"
                for ph in PHASES
                if ph + "/outside" in t["outside"]
            )
            fwd_bytes = t["bytes"].get("forward/block", 0.0) / args.layers
            act = args.batch * args.seq * args.dim * 4
            print(
                f"| {row['mode']} | {n} | {fmt_ops(t['per_layer']['forward']['each'])} "
                f"| {fmt_ops(t['per_layer']['backward']['each'])} | {expected} | {outside} "
                f"| {fmt_bytes(fwd_bytes)} ({fmt_bytes(2 * 2 * (n - 1) / n * act)}) "
                f"| {fmt_bytes(row['summary']['total'])} |"
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import fastllm

    record = {
        "command": " ".join([sys.executable, *sys.argv]),
        "args": vars(args),
        "phi": phi,
        "phi_bytes": phi * elem,
        "zero1": {"available": z1, "why": z1_why},
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
    print(f"\nresults: {out / 'results.json'}")
    return (
        0
        if all(
            r["status"] in ("ok", "not available") or r["status"].startswith("skipped")
            for r in rows
        )
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())
