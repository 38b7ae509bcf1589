"""``python -m fastllm.plan``: what a model costs before training it.

Parameters by component, training FLOPs per token, memory per GPU under DDP
and ZeRO-1/2/3, activation memory, the Chinchilla-optimal token count and the
time for a token budget at a given MFU. Everything here is arithmetic on the
config; a test checks the parameter count against the built model.

    python -m fastllm.plan --config 7B --gpus 8 --seq 4096 --batch 1 --checkpointing
"""

from __future__ import annotations

from dataclasses import dataclass

from fastllm.config import ConfigError, Section, check, cli, knob, run_cli, section
from fastllm.model.config import SIZES, ModelConfig

H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM

# Bytes per parameter under mixed-precision Adam (ZeRO paper, K = 12):
# 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master weights, Adam m and v).
WEIGHT_BYTES, GRAD_BYTES, OPTIM_BYTES = 2, 2, 12
STRATEGIES = ("ddp", "zero1", "zero2", "zero3")


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


def model_state_bytes(n_params: int, gpus: int) -> dict[str, float]:
    """Weights + grads + optimizer state per GPU: DDP 16Φ, ZeRO-1 4Φ + 12Φ/N,
    ZeRO-2 2Φ + 14Φ/N, ZeRO-3 16Φ/N (Φ parameters, N GPUs)."""
    phi, n = float(n_params), gpus
    w, g, o = WEIGHT_BYTES * phi, GRAD_BYTES * phi, OPTIM_BYTES * phi
    return {
        "ddp": w + g + o,
        "zero1": w + g + o / n,
        "zero2": w + (g + o) / n,
        "zero3": (w + g + o) / n,
    }


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

    @property
    def chinchilla_tokens(self) -> float:
        """Compute-optimal tokens, ≈ 20 per parameter (Hoffmann et al. 2022)."""
        return 20.0 * self.params["total"]

    @property
    def seconds(self) -> float:
        """Wall time for ``tokens`` at ``mfu`` of the peak on ``gpus`` GPUs."""
        return self.tokens * self.flops["total"] / (self.gpus * self.peak_tflops * 1e12 * self.mfu)

    def memory(self, strategy: str) -> float:
        """Bytes per GPU: model states under ``strategy`` plus activations."""
        return self.model_states[strategy] + self.activations


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
) -> Plan:
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
    params = param_counts(config)
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
        model_states=model_state_bytes(params["total"], gpus),
        activations=activation_bytes(config, batch, seq_len, checkpointing),
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
        f"memory per GPU, {p.gpus} GPU(s), Adam in mixed precision (16 bytes/param in all), "
        f"micro-batch {p.batch} × {p.seq_len}, checkpointing {'on' if p.checkpointing else 'off'} (GB = 1e9 bytes)",
        f"  {'strategy':<9} {'formula':<10} {'states':>11} {'activations':>11} {'total':>11}",
    ]
    formulas = {"ddp": "16Φ", "zero1": "4Φ+12Φ/N", "zero2": "2Φ+14Φ/N", "zero3": "16Φ/N"}
    for s in STRATEGIES:
        lines.append(
            f"  {s:<9} {formulas[s]:<10} {_bytes(p.model_states[s]):>11} "
            f"{_bytes(p.activations):>11} {_bytes(p.memory(s)):>11}"
        )
    tokens_per_step = p.batch * p.seq_len * p.gpus
    lines += [
        "",
        f"Chinchilla-optimal tokens (20N): {_si(p.chinchilla_tokens)}",
        f"time for {_si(p.tokens)} tokens on {p.gpus} GPU(s) at {p.mfu:.0%} MFU of "
        f"{p.peak_tflops:g} TFLOP/s: {_duration(p.seconds)} "
        f"({p.tokens / tokens_per_step:,.0f} steps of {tokens_per_step:,} tokens, "
        f"{p.gpus * p.peak_tflops * 1e12 * p.mfu / f['total']:,.0f} tokens/s)",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class PlanConfig(Section):
    """What to plan (the ``[plan]`` table of ``python -m fastllm.plan``)."""

    table = "plan"

    model: str = knob("tiny", f"a size ({', '.join(SIZES)}) or a TOML file with a [model] table")
    batch: int = knob(1, "micro-batch per GPU, in sequences")
    seq: int | None = knob(None, "sequence length (none: model.max_seq_len)")
    gpus: int = knob(1, "data-parallel GPUs (N in the ZeRO formulas)")
    mfu: float = knob(0.4, "model FLOPs utilization for the time estimate")
    peak_tflops: float = knob(H100_BF16_TFLOPS, "peak TFLOP/s per GPU")
    tokens: float | None = knob(None, "token budget (none: 20 tokens per parameter)")
    checkpointing: bool = knob(False, "full activation checkpointing per block")

    def validate(self) -> None:
        for name in ("batch", "gpus"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
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
        )


@dataclass(frozen=True)
class PlanRun(Section):
    """The command line of ``python -m fastllm.plan``."""

    plan: PlanConfig = section(PlanConfig)


FLAGS = {
    "--config": ("plan.model", "a size or a TOML file with a [model] table"),
    "--batch": ("plan.batch", "micro-batch per GPU, in sequences"),
    "--seq": ("plan.seq", "sequence length (default: model.max_seq_len)"),
    "--gpus": ("plan.gpus", "data-parallel GPUs"),
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
