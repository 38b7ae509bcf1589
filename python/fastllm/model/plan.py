"""``python -m fastllm.plan``: what a model costs before training it.

Parameters by component, training FLOPs per token, memory per GPU under DDP
and ZeRO-1/2/3 over a 3-D layout (tensor × pipeline × data parallel, the
names of ``[parallel]``: ``tp``, ``pp``, ``pp_microbatches``, ``zero``),
CPU offload, activation memory, the pipeline bubble, the Chinchilla-optimal
token count, and tokens/s and the time for a token budget at a given MFU.
Everything here is arithmetic on the config; a test checks the parameter
count against the built model.

    python -m fastllm.plan --config 7B --gpus 8 --seq 4096 --batch 1 --checkpointing
    python -m fastllm.plan --config gpt3-175b --gpus 1024 --tp 8 --pp 8 --microbatches 64 --checkpointing
    python -m fastllm.plan --config llama-70b --gpus 64 --tp 8 --pp 2 --microbatches 16 --checkpointing

The layout, Megatron-style (what ``fastllm.parallel`` builds):

- ``tp`` splits every attention and MLP matrix (q/k/v/w1/w3 by columns, o/w2
  by rows), the embedding and the head (by vocabulary rows, ⌈V/tp⌉ on the
  largest rank); the norms are replicated;
- ``pp`` splits the blocks into contiguous stages as
  :func:`fastllm.parallel.pipeline.stage_layers` does; the embedding lives on
  the first stage, the final norm and the head on the last (a tied head is a
  second copy there when ``pp > 1``). The report names the stage that needs
  the most memory: it is the one that must fit;
- ZeRO then shards a stage's parameters over its ``dp`` replicas, as for
  plain data parallelism (16 bytes/param of mixed-precision Adam);
- ``offload`` moves the optimizer states (``optimizer``) or the weights,
  gradients and optimizer states (``all``, as FSDP2's ``cpu_offload``) to the
  CPU: those bytes leave the GPU's figure and are reported per GPU on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from fastllm.config import ConfigError, Section, check, cli, knob, run_cli, section
from fastllm.model.config import SIZES, ModelConfig
from fastllm.parallel.pipeline import stage_layers

H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM

# Bytes per parameter under mixed-precision Adam (ZeRO paper, K = 12):
# 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master weights, Adam m and v).
WEIGHT_BYTES, GRAD_BYTES, OPTIM_BYTES = 2, 2, 12
STRATEGIES = ("ddp", "zero1", "zero2", "zero3")
OFFLOADS = ("none", "optimizer", "all")


def param_counts(c: ModelConfig) -> dict[str, int]:
    """Parameters by component, matching ``Decoder(c).num_params()``."""
    q_dim, kv_dim = c.n_heads * c.head_dim, c.kv_heads * c.head_dim
    attn = c.dim * q_dim + 2 * c.dim * kv_dim + q_dim * c.dim
    if c.qkv_bias:
        attn += q_dim + 2 * kv_dim
    counts = {
        "embedding": c.vocab_size * c.dim,
        "attention": c.n_layers * attn,
        "mlp": c.n_layers * 3 * c.dim * c.hidden_dim,
        "norms": (2 * c.n_layers + 1) * c.dim,
        "head": 0 if c.tie_embeddings else c.vocab_size * c.dim,
    }
    counts["total"] = sum(counts.values())
    return counts


def flops_per_token(c: ModelConfig, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token (forward + backward) = 6·N_mm + 12·L·H·hd·T.

    N_mm counts the weights of every matmul: attention and MLP matrices and the
    head (a tied head too: its matmul is real), not the embedding lookup or the
    norms. Each such weight costs 2 FLOPs forward and 4 backward. Attention adds
    QKᵀ and AV: 2·2·T·H·hd forward per token and layer, 3× that with backward;
    this counts the full T×T square even though causal attention needs half,
    the convention of PaLM and torchtitan, so MFU stays comparable.
    """
    p = param_counts(c)
    n_mm = p["attention"] + p["mlp"] + c.vocab_size * c.dim
    dense = 6.0 * n_mm
    attention = 12.0 * c.n_layers * c.n_heads * c.head_dim * seq_len
    return {"n_matmul": n_mm, "dense": dense, "attention": attention, "total": dense + attention}


def model_state_parts(
    n_params: int,
    gpus: int,
    bytes_per_param: tuple[float, float, float] = (WEIGHT_BYTES, GRAD_BYTES, OPTIM_BYTES),
) -> dict[str, tuple[float, float, float]]:
    """(weights, grads, optimizer states) bytes per GPU for each strategy, Φ
    parameters data-parallel over N GPUs: ZeRO-1 shards the optimizer states,
    ZeRO-2 the gradients too, ZeRO-3 the weights too. ``bytes_per_param``:
    (weight, grad, optimizer) bytes of one parameter — mixed-precision Adam's
    (2, 2, 12) by default; fp32 AdamW is (4, 4, 8)."""
    phi, n = float(n_params), gpus
    wb, gb, ob = bytes_per_param
    w, g, o = wb * phi, gb * phi, ob * phi
    return {
        "ddp": (w, g, o),
        "zero1": (w, g, o / n),
        "zero2": (w, g / n, o / n),
        "zero3": (w / n, g / n, o / n),
    }


def model_state_bytes(n_params: int, gpus: int) -> dict[str, float]:
    """Weights + grads + optimizer state per GPU: DDP 16Φ, ZeRO-1 4Φ + 12Φ/N,
    ZeRO-2 2Φ + 14Φ/N, ZeRO-3 16Φ/N (Φ parameters, N GPUs)."""
    return {k: w + g + o for k, (w, g, o) in model_state_parts(n_params, gpus).items()}


def offloaded_bytes(n_params: int, gpus: int, offload: str) -> tuple[dict[str, float], dict[str, float]]:
    """(GPU bytes, CPU bytes) of model states per GPU for each strategy when
    ``offload`` (``none``, ``optimizer``, ``all``) moves some of them to the
    CPU: ``optimizer`` the optimizer states (ZeRO-Offload), ``all`` the
    weights and gradients as well (FSDP2 ``cpu_offload``, ZeRO-Infinity). A
    layer's weights gathered for its compute are transient and not counted."""
    if offload not in OFFLOADS:
        raise ValueError(f"offload must be one of {', '.join(OFFLOADS)}, got {offload!r}")
    gpu, cpu = {}, {}
    for k, (w, g, o) in model_state_parts(n_params, gpus).items():
        on_cpu = {"none": 0.0, "optimizer": o, "all": w + g + o}[offload]
        gpu[k], cpu[k] = w + g + o - on_cpu, on_cpu
    return gpu, cpu


def check_layout(c: ModelConfig, tp: int, pp: int) -> None:
    """The splits tp and pp need of the model, as errors naming the field."""
    for name, v in (("tp", tp), ("pp", pp)):
        if v < 1:
            raise ConfigError(f"plan.{name}", f"must be >= 1, got {v}")
    for what, n in (("model.n_heads", c.n_heads), ("the kv heads", c.kv_heads), ("the ffn size", c.hidden_dim)):
        if n % tp:
            raise ConfigError("plan.tp", f"{tp} does not divide {what} ({n})")
    if pp > c.n_layers:
        raise ConfigError("plan.pp", f"{pp} pipeline stages for model.n_layers={c.n_layers} layers")


def stage_params(c: ModelConfig, tp: int = 1, pp: int = 1) -> list[dict[str, int]]:
    """Parameters held by one GPU of each pipeline stage under ``tp`` × ``pp``
    (by component, as :func:`param_counts`; equal to it for tp = pp = 1).

    Attention and MLP matrices (and q/k/v biases) are split over ``tp``; the
    embedding and the head by vocabulary rows, ⌈V/tp⌉ on the largest rank;
    the norms are replicated. Blocks split as ``stage_layers``; the embedding
    is on the first stage, the final norm and head on the last (a tied head is
    a copy of the embedding there when ``pp > 1``, as in Megatron).
    """
    check_layout(c, tp, pp)
    full = param_counts(c)
    per_layer_attn, per_layer_mlp = full["attention"] // c.n_layers, full["mlp"] // c.n_layers
    vocab_rows = math.ceil(c.vocab_size / tp) * c.dim
    out = []
    for s, layers in enumerate(stage_layers(c.n_layers, pp)):
        n = len(layers)
        first, last = s == 0, s == pp - 1
        d = {
            "layers": n,
            "embedding": vocab_rows if first else 0,
            "attention": n * per_layer_attn // tp,
            "mlp": n * per_layer_mlp // tp,
            "norms": 2 * n * c.dim + (c.dim if last else 0),
            "head": vocab_rows if last and (not c.tie_embeddings or pp > 1) else 0,
        }
        d["total"] = sum(v for k, v in d.items() if k != "layers")
        out.append(d)
    return out


def activation_bytes(c: ModelConfig, batch: int, seq_len: int, checkpointing: bool) -> float:
    """Bytes of activations saved for backward on one GPU, for bf16 activations
    and a fused (flash / memory-efficient) attention that stores no T×T scores.

    Per token and layer: each of the two RMSNorms keeps its float32 input (4d),
    its normalized bf16 value (2d, for the weight's gradient), its output after
    the weight (2d, the next matmul's input) and a float32 rsqrt: 2·(8d + 4);
    attention keeps
    q, k, v and its output in bf16 (2·(2d + 2·kv_dim)) and a float32 log-sum-exp
    (4·H); the SwiGLU keeps w1 and w3 outputs, silu(w1) and the product in bf16
    (8·ffn). The head keeps the final norm's 8d + 4, the loss's float32
    log-softmax (4V) and the int64 token ids (8). With full activation checkpointing each block keeps only
    its bf16 input (2d) and one block at a time is rebuilt during backward.
    A test checks this against the tensors autograd actually saves.
    """
    kv_dim = c.kv_heads * c.head_dim
    layer = 2 * (8 * c.dim + 4) + 2 * (2 * c.dim + 2 * kv_dim) + 4 * c.n_heads + 8 * c.hidden_dim
    head = 8 * c.dim + 4 + 4 * c.vocab_size + 8
    per_token = (c.n_layers * 2 * c.dim + layer if checkpointing else c.n_layers * layer) + head
    return float(batch * seq_len * per_token)


def bubble_fraction(pp: int, microbatches: int, virtual: int = 1) -> float:
    """Idle fraction of a pipeline step, (p − 1)/(m + p − 1) for GPipe and 1F1B;
    interleaved 1F1B with ``virtual`` stages per rank shrinks the warm-up and
    cool-down ``virtual``-fold: (p − 1)/(v·m + p − 1) (Narayanan et al. 2021)."""
    return (pp - 1) / (virtual * microbatches + pp - 1)


def stage_activation_bytes(
    c: ModelConfig,
    batch: int,
    seq_len: int,
    checkpointing: bool,
    tp: int = 1,
    pp: int = 1,
    microbatches: int = 1,
) -> list[float]:
    """Activation bytes on one GPU of each pipeline stage, for micro-batches of
    ``batch`` sequences (the per-token terms of :func:`activation_bytes`).

    Pipeline (1F1B): stage s (of p) has at most min(p − s, m) micro-batches
    whose forward is done and backward not yet, each holding its blocks'
    saved activations (with checkpointing: its blocks' inputs, plus one block
    rebuilt at a time). So the first stage holds its blocks × min(p, m)
    micro-batches; the last stage, one micro-batch's and the head's. GPipe
    would hold all m; the planner assumes 1F1B (the run's default).
    Tensor parallel with sequence parallelism (Korthikanti et al. 2022):
    every saved activation is split over tp (the norms' and residuals' along
    the sequence, attention's by heads, the MLP's by hidden units, the loss's
    log-softmax by vocabulary), so the figure is divided by tp (the int64 ids,
    8 bytes a token, are in truth replicated: noise). For tp = pp = 1 this is
    :func:`activation_bytes`.
    """
    kv_dim = c.kv_heads * c.head_dim
    layer = 2 * (8 * c.dim + 4) + 2 * (2 * c.dim + 2 * kv_dim) + 4 * c.n_heads + 8 * c.hidden_dim
    head = 8 * c.dim + 4 + 4 * c.vocab_size + 8
    tokens = batch * seq_len
    out = []
    for s, layers in enumerate(stage_layers(c.n_layers, pp)):
        n, in_flight = len(layers), min(pp - s, microbatches)
        if checkpointing:
            a = in_flight * n * 2 * c.dim + layer
        else:
            a = in_flight * n * layer
        if s == pp - 1:
            a += head
        out.append(float(tokens * a) / tp)
    return out


@dataclass(frozen=True)
class Stage:
    """One GPU of one pipeline stage: its parameters, model states per
    strategy (GPU and CPU bytes after offload) and activations."""

    index: int
    params: dict[str, int]
    gpu_states: dict[str, float]
    cpu_states: dict[str, float]
    activations: float

    def memory(self, strategy: str) -> float:
        return self.gpu_states[strategy] + self.activations


@dataclass(frozen=True)
class Plan:
    config: ModelConfig
    batch: int
    seq_len: int
    gpus: int
    checkpointing: bool
    mfu: float
    peak_tflops: float
    tokens: float
    params: dict[str, int]
    flops: dict[str, float]
    model_states: dict[str, float]
    activations: float
    tp: int = 1
    pp: int = 1
    dp: int = 1
    microbatches: int = 1
    zero: int = 1
    offload: str = "none"
    stages: tuple[Stage, ...] = ()
    virtual: int = 1

    @property
    def strategy(self) -> str:
        """The strategy of ``zero``: 0 = ddp, 1..3 = zero1..zero3."""
        return STRATEGIES[self.zero]

    @property
    def bubble(self) -> float:
        """Pipeline idle fraction (p − 1)/(v·m + p − 1)."""
        return bubble_fraction(self.pp, self.microbatches, self.virtual)

    @property
    def chinchilla_tokens(self) -> float:
        """Compute-optimal tokens, ≈ 20 per parameter (Hoffmann et al. 2022)."""
        return 20.0 * self.params["total"]

    @property
    def tokens_per_second(self) -> float:
        """The whole cluster's tokens/s at ``mfu`` of the peak (MFU counts
        the bubble: a pipeline's idle time lowers the MFU it reaches)."""
        return self.gpus * self.peak_tflops * 1e12 * self.mfu / self.flops["total"]

    @property
    def seconds(self) -> float:
        """Wall time for ``tokens`` at ``mfu`` of the peak on ``gpus`` GPUs."""
        return self.tokens * self.flops["total"] / (self.gpus * self.peak_tflops * 1e12 * self.mfu)

    @property
    def largest_stage(self) -> Stage:
        """The stage holding the most parameters per GPU (the first on a tie)."""
        return max(self.stages, key=lambda st: st.params["total"])

    def worst_stage(self, strategy: str | None = None) -> Stage:
        """The stage needing the most GPU memory under ``strategy`` (default:
        ``zero``'s): the one that must fit."""
        s = strategy or self.strategy
        return max(self.stages, key=lambda st: st.memory(s))

    def memory(self, strategy: str) -> float:
        """Bytes per GPU on the worst stage: model states on the GPU under
        ``strategy`` plus activations."""
        return self.worst_stage(strategy).memory(strategy)


def plan(
    config: ModelConfig,
    *,
    batch: int = 1,
    seq_len: int | None = None,
    gpus: int = 1,
    checkpointing: bool = False,
    mfu: float = 0.4,
    peak_tflops: float = H100_BF16_TFLOPS,
    tokens: float | None = None,
    tp: int = 1,
    pp: int = 1,
    dp: int | None = None,
    microbatches: int | None = None,
    zero: int = 1,
    offload: str = "none",
    virtual: int = 1,
) -> Plan:
    """The plan of ``config`` on ``gpus`` = tp × pp × dp GPUs (``dp`` none:
    gpus / (tp·pp)); ``microbatches`` (m, none: pp) per pipeline step of
    ``batch`` sequences each; ``zero`` picks the headline strategy;
    ``virtual`` stages per rank (interleaved 1F1B) enter the bubble."""
    seq_len = config.max_seq_len if seq_len is None else seq_len
    for name, v in (("batch", batch), ("seq", seq_len), ("gpus", gpus)):
        if v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    if seq_len > config.max_seq_len:
        raise ValueError(f"--seq {seq_len} exceeds model.max_seq_len={config.max_seq_len}")
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], got {mfu}")
    if peak_tflops <= 0:
        raise ValueError(f"--peak-tflops must be > 0, got {peak_tflops}")
    check_layout(config, tp, pp)
    if dp is None:
        if gpus % (tp * pp):
            raise ConfigError("plan.gpus", f"{gpus} is not divisible by tp × pp = {tp} × {pp}")
        dp = gpus // (tp * pp)
    if dp < 1 or tp * pp * dp != gpus:
        raise ConfigError("plan.dp", f"tp × pp × dp = {tp} × {pp} × {dp} = {tp * pp * dp}, but gpus = {gpus}")
    m = pp if microbatches is None else microbatches
    if m < 1:
        raise ConfigError("plan.pp_microbatches", f"must be >= 1, got {m}")
    if virtual < 1 or config.n_layers < pp * virtual:
        raise ConfigError(
            "plan.pp_virtual",
            f"{virtual} stages per rank × pp {pp} for model.n_layers={config.n_layers}",
        )
    if zero not in (0, 1, 2, 3):
        raise ConfigError("plan.zero", f"must be 0 (ddp), 1, 2 or 3, got {zero}")
    if offload not in OFFLOADS:
        raise ConfigError("plan.offload", f"must be one of {', '.join(OFFLOADS)}, got {offload!r}")
    params = param_counts(config)
    acts = stage_activation_bytes(config, batch, seq_len, checkpointing, tp, pp, m)
    stages = []
    for i, (sp, a) in enumerate(zip(stage_params(config, tp, pp), acts, strict=True)):
        gpu, cpu = offloaded_bytes(sp["total"], dp, offload)
        stages.append(Stage(i, sp, gpu, cpu, a))
    largest = max(stages, key=lambda st: st.params["total"])
    return Plan(
        config=config,
        batch=batch,
        seq_len=seq_len,
        gpus=gpus,
        checkpointing=checkpointing,
        mfu=mfu,
        peak_tflops=peak_tflops,
        tokens=20.0 * params["total"] if tokens is None else float(tokens),
        params=params,
        flops=flops_per_token(config, seq_len),
        model_states=model_state_bytes(largest.params["total"], dp),
        activations=max(acts),
        tp=tp,
        pp=pp,
        dp=dp,
        microbatches=m,
        zero=zero,
        offload=offload,
        stages=tuple(stages),
        virtual=virtual,
    )


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _bytes(x: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} B"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} seconds"
    if s < 3600:
        return f"{s / 60:.1f} minutes"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} hours"
    return f"{s / 86400:.1f} days"


def _stage_name(p: Plan, st: Stage) -> str:
    if p.pp == 1:
        return "every GPU"
    where = "first" if st.index == 0 else "last" if st.index == p.pp - 1 else "middle"
    return f"stage {st.index} of {p.pp} ({where})"


def report(p: Plan, name: str = "") -> str:
    c = p.config
    lines = [
        f"model {name}: vocab {c.vocab_size}, dim {c.dim}, layers {c.n_layers}, "
        f"heads {c.n_heads} ({c.kv_heads} kv), ffn {c.hidden_dim}, "
        f"{'tied' if c.tie_embeddings else 'untied'} embeddings",
        "",
        "parameters",
    ]
    total = p.params["total"]
    for k, v in p.params.items():
        if k != "total":
            lines.append(f"  {k:<10} {v:>16,}  {v / total:6.1%}")
    lines.append(f"  {'total':<10} {total:>16,}  ({_si(total)})")
    f = p.flops
    lines += [
        "",
        f"training FLOPs per token at seq {p.seq_len}: 6·N_mm + 12·L·H·hd·T",
        f"  = 6 × {f['n_matmul']:,} + 12·{c.n_layers}·{c.n_heads}·{c.head_dim}·{p.seq_len}"
        f" = {f['dense']:.3e} + {f['attention']:.3e} = {f['total']:.3e}",
        "",
        f"memory per GPU, {p.gpus} GPU(s) = tp {p.tp} × pp {p.pp} × dp {p.dp}, "
        f"Adam in mixed precision (16 bytes/param in all), "
        f"micro-batch {p.batch} × {p.seq_len}, checkpointing {'on' if p.checkpointing else 'off'}, "
        f"offload {p.offload} (GB = 1e9 bytes)",
    ]
    big = p.largest_stage
    if p.tp > 1 or p.pp > 1:
        lines.append(
            f"  Φ = {big.params['total']:,} parameters on one GPU of {_stage_name(p, big)} "
            f"(the most; {total:,} in all over tp {p.tp} × pp {p.pp}), N = dp = {p.dp}; "
            f"each row: the stage needing the most memory; states: on the GPU"
        )
    cpu = p.offload != "none"
    lines.append(
        f"  {'strategy':<9} {'formula':<10} {'states':>11} {'activations':>11} {'total':>11}"
        + (f" {'CPU states':>11}" if cpu else "")
    )
    formulas = {"ddp": "16Φ", "zero1": "4Φ+12Φ/N", "zero2": "2Φ+14Φ/N", "zero3": "16Φ/N"}
    for s in STRATEGIES:
        st = p.worst_stage(s)
        lines.append(
            f"  {s:<9} {formulas[s]:<10} {_bytes(st.gpu_states[s]):>11} "
            f"{_bytes(st.activations):>11} {_bytes(st.memory(s)):>11}"
            + (f" {_bytes(st.cpu_states[s]):>11}" if cpu else "")
            + ("  ← zero" if s == p.strategy and (p.tp > 1 or p.pp > 1 or cpu) else "")
        )
    worst = p.worst_stage()
    if p.pp > 1:
        lines += [
            "",
            f"per stage under {p.strategy} (1F1B: stage s holds min(p − s, m) micro-batches' activations)",
            f"  {'stage':<7} {'layers':>6} {'params/GPU':>16} {'states':>11} {'in flight':>9} "
            f"{'activations':>11} {'total':>11}" + (f" {'CPU states':>11}" if cpu else ""),
        ]
        for st in p.stages:
            tag = " (embedding)" if st.index == 0 else " (head)" if st.index == p.pp - 1 else ""
            lines.append(
                f"  {st.index:<7} {st.params['layers']:>6} {st.params['total']:>16,} "
                f"{_bytes(st.gpu_states[p.strategy]):>11} {min(p.pp - st.index, p.microbatches):>9} "
                f"{_bytes(st.activations):>11} {_bytes(st.memory(p.strategy)):>11}"
                + (f" {_bytes(st.cpu_states[p.strategy]):>11}" if cpu else "")
                + tag
                + ("  ← must fit" if st is worst else "")
            )
        lines += [
            (
                f"  pipeline bubble (p − 1)/(m + p − 1) = {p.pp - 1}/{p.microbatches + p.pp - 1} "
                f"= {p.bubble:.1%} (m = {p.microbatches} micro-batches)"
                if p.virtual == 1
                else f"  pipeline bubble (p − 1)/(v·m + p − 1) = {p.pp - 1}/"
                f"{p.virtual * p.microbatches + p.pp - 1} = {p.bubble:.1%} (m = {p.microbatches} "
                f"micro-batches, v = {p.virtual} stages per GPU, interleaved 1F1B)"
            ),
        ]
    lines += [
        "",
        f"per GPU under {p.strategy}: {_bytes(worst.gpu_states[p.strategy])} model states + "
        f"{_bytes(worst.activations)} activations = {_bytes(worst.memory(p.strategy))} "
        f"on {_stage_name(p, worst)}"
        + (f"; {_bytes(worst.cpu_states[p.strategy])} on the CPU" if cpu else ""),
    ]
    tokens_per_step = p.batch * p.seq_len * p.dp * p.microbatches
    lines += [
        "",
        f"Chinchilla-optimal tokens (20N): {_si(p.chinchilla_tokens)}",
        f"tokens/s at {p.mfu:.0%} MFU of {p.peak_tflops:g} TFLOP/s: "
        f"{p.tokens_per_second:,.0f} on {p.gpus} GPU(s), {p.tokens_per_second / p.gpus:,.0f} per GPU",
        f"time for {_si(p.tokens)} tokens on {p.gpus} GPU(s) at {p.mfu:.0%} MFU of "
        f"{p.peak_tflops:g} TFLOP/s: {_duration(p.seconds)} "
        f"({p.tokens / tokens_per_step:,.0f} steps of {tokens_per_step:,} tokens, "
        f"{p.tokens_per_second:,.0f} tokens/s)",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class PlanConfig(Section):
    """What to plan (the ``[plan]`` table of ``python -m fastllm.plan``)."""

    table = "plan"

    model: str = knob("tiny", f"a size ({', '.join(SIZES)}) or a TOML file with a [model] table")
    batch: int = knob(1, "micro-batch per GPU, in sequences")
    seq: int | None = knob(None, "sequence length (none: model.max_seq_len)")
    gpus: int = knob(1, "GPUs in all: tp × pp × dp (with tp = pp = 1, N in the ZeRO formulas)")
    tp: int = knob(1, "tensor-parallel degree (Megatron split, sequence parallel on the norms)")
    pp: int = knob(1, "pipeline-parallel degree (stages)")
    dp: int = knob(0, "data-parallel degree (N in the ZeRO formulas); 0 = gpus / (tp × pp)")
    pp_microbatches: int = knob(0, "pipeline micro-batches per step (m in the bubble); 0 = pp")
    pp_virtual: int = knob(1, "pipeline stages per GPU (interleaved 1F1B: v in the bubble)")
    zero: int = knob(1, "the strategy to headline: 0 = ddp, 1, 2, 3 = ZeRO stage (all are printed)")
    offload: Literal["none", "optimizer", "all"] = knob(
        "none", "to the CPU: optimizer states, or all model states (weights, grads, optimizer)"
    )
    mfu: float = knob(0.4, "model FLOPs utilization for the time estimate")
    peak_tflops: float = knob(H100_BF16_TFLOPS, "peak TFLOP/s per GPU")
    tokens: float | None = knob(None, "token budget (none: 20 tokens per parameter)")
    checkpointing: bool = knob(False, "full activation checkpointing per block")

    def validate(self) -> None:
        for name in ("batch", "gpus", "tp", "pp"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.dp >= 0, "dp", f"must be >= 1 or 0 (gpus / (tp × pp)), got {self.dp}")
        check(self.pp_microbatches >= 0, "pp_microbatches", f"must be >= 1 or 0 (pp), got {self.pp_microbatches}")
        check(self.zero in (0, 1, 2, 3), "zero", f"must be 0 (ddp), 1, 2 or 3, got {self.zero}")
        if self.dp:
            check(
                self.tp * self.pp * self.dp == self.gpus,
                "gpus",
                f"{self.gpus} is not tp × pp × dp = {self.tp} × {self.pp} × {self.dp}",
            )
        else:
            check(
                self.gpus % (self.tp * self.pp) == 0,
                "gpus",
                f"{self.gpus} is not divisible by tp × pp = {self.tp} × {self.pp}",
            )
        check(self.seq is None or self.seq >= 1, "seq", f"must be >= 1, got {self.seq}")
        check(0 < self.mfu <= 1, "mfu", f"must be in (0, 1], got {self.mfu}")
        check(self.peak_tflops > 0, "peak_tflops", f"must be > 0, got {self.peak_tflops}")

    def build(self) -> Plan:  # type: ignore[override]
        """The plan of this config's model."""
        try:
            config = ModelConfig.load(self.model)
        except ConfigError as e:
            raise (ConfigError("plan.model", e.message) if not e.path else e) from None
        if self.seq is not None and self.seq > config.max_seq_len:
            raise ConfigError("plan.seq", f"{self.seq} exceeds model.max_seq_len={config.max_seq_len}")
        return plan(
            config,
            batch=self.batch,
            seq_len=self.seq,
            gpus=self.gpus,
            checkpointing=self.checkpointing,
            mfu=self.mfu,
            peak_tflops=self.peak_tflops,
            tokens=self.tokens,
            tp=self.tp,
            pp=self.pp,
            dp=self.dp or None,
            microbatches=self.pp_microbatches or None,
            zero=self.zero,
            offload=self.offload,
            virtual=self.pp_virtual,
        )


@dataclass(frozen=True)
class PlanRun(Section):
    """The command line of ``python -m fastllm.plan``."""

    plan: PlanConfig = section(PlanConfig)


FLAGS = {
    "--config": ("plan.model", "a size or a TOML file with a [model] table"),
    "--batch": ("plan.batch", "micro-batch per GPU, in sequences"),
    "--seq": ("plan.seq", "sequence length (default: model.max_seq_len)"),
    "--gpus": ("plan.gpus", "GPUs in all (tp × pp × dp)"),
    "--tp": ("plan.tp", "tensor-parallel degree"),
    "--pp": ("plan.pp", "pipeline-parallel degree"),
    "--dp": ("plan.dp", "data-parallel degree (default: gpus / (tp × pp))"),
    "--microbatches": ("plan.pp_microbatches", "pipeline micro-batches per step (default: pp)"),
    "--virtual": ("plan.pp_virtual", "pipeline stages per GPU (interleaved 1F1B; default 1)"),
    "--zero": ("plan.zero", "strategy to headline: 0 = ddp, 1, 2, 3"),
    "--offload": ("plan.offload", "none, optimizer or all (model states to the CPU)"),
    "--mfu": ("plan.mfu", "model FLOPs utilization for the time estimate"),
    "--peak-tflops": ("plan.peak_tflops", "peak TFLOP/s per GPU"),
    "--tokens": ("plan.tokens", "token budget (default: 20N)"),
    "--checkpointing": ("plan.checkpointing!", "full activation checkpointing per block"),
}


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        run = cli(
            PlanRun,
            argv,
            prog="python -m fastllm.plan",
            description=__doc__.split("\n\n")[0],
            flags=FLAGS,
            config_flag=False,
        )
        if run is None:
            return 0
        print(report(run.plan.build(), run.plan.model))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
