"""``TrainConfig``: every knob of a pretraining run, from TOML plus dotted overrides.

A run config is a TOML file with the tables ``[model]``, ``[optim]``,
``[schedule]``, ``[train]``, ``[data]``, ``[objective]`` and ``[parallel]`` (see :mod:`fastllm.config`); each
table is a typed section and every field has a default and a one-line doc
(``TrainConfig.describe()``, ``python -m fastllm.train --describe``).
Command lines override fields at any depth: ``--train.steps 200 --optim.name
muon``. Packages add tables with ``TrainConfig.register(name, Section)``.
Unknown tables or keys and wrongly typed values are a
:class:`~fastllm.config.ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastllm.config import ConfigError, Section, check, knob, section
from fastllm.model.config import ModelConfig
from fastllm.optim.routing import OptimConfig
from fastllm.optim.schedule import ScheduleConfig
from fastllm.parallel.config import ParallelConfig
from fastllm.train.objectives import ObjectiveConfig


@dataclass(frozen=True)
class LoopConfig(Section):
    """The loop itself (the ``[train]`` table)."""

    table = "train"

    steps: int = knob(200, "optimizer steps of the whole run")
    batch: int = knob(16, "global batch in sequences per optimizer step (all ranks, all micro-batches)")
    seq: int = knob(128, "tokens per sequence (<= model.max_seq_len)")
    grad_accum: int = knob(1, "micro-batches per optimizer step on each rank")
    clip: float = knob(1.0, "max global gradient norm; 0 = no clipping (norm still logged)")
    dtype: Literal["bf16", "fp16", "fp32"] = knob("bf16", "autocast dtype: bf16, fp16 (with loss scaling) or fp32")
    compile: bool = knob(False, "torch.compile the model")
    activation_checkpointing: Literal["none", "full", "selective"] | bool = knob(
        "none",
        "recompute activations in backward: none, full (each block), selective (each block "
        "keeps its matmul and attention outputs, recomputes norms and pointwise ops); "
        "true = full, false = none",
    )
    z_loss: float = knob(0.0, "weight of mean(logsumexp(logits)²) in the loss (PaLM: 1e-4)")
    spike_factor: float = knob(3.0, "skip an update whose loss exceeds this × the running median; 0 = off")
    spike_norm_factor: float = knob(10.0, "skip an update whose grad norm exceeds this × the running median; 0 = off")
    spike_window: int = knob(50, "accepted steps in the running median")
    spike_min_history: int = knob(10, "accepted steps before outliers are judged (non-finite always)")
    eval_every: int = knob(50, "validate every N steps; 0 = at the end only")
    eval_batches: int = knob(8, "micro-batches per rank in a validation")
    log_every: int = knob(10, "write a metrics record every N steps")
    ckpt_every: int = knob(100, "checkpoint every N steps; 0 = at the end only")
    keep_checkpoints: int = knob(2, "checkpoints kept on disk; 0 = all")
    resume: bool = knob(True, "continue from out_dir/checkpoints/latest if any")
    out_dir: str = knob("runs/tiny", "metrics, checkpoints and plots go here")
    seed: int = knob(0, "seed of init, data order and sampling")
    device: Literal["auto", "cpu", "cuda"] = knob("auto", "auto (cuda if available, else cpu), cpu or cuda")
    peak_tflops: float = knob(0.0, "peak TFLOP/s per device for MFU; 0 = 989 (H100 bf16) on cuda, none on cpu")
    progress: bool = knob(True, "show a progress bar on rank 0")
    tensorboard: bool = knob(True, "also write TensorBoard events when installed")
    dist_timeout_s: float = knob(600.0, "timeout of collectives under torchrun")

    def validate(self) -> None:
        for key in ("steps", "batch", "seq", "grad_accum", "spike_window", "eval_batches", "log_every"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        for key in (
            "clip",
            "z_loss",
            "spike_factor",
            "eval_every",
            "ckpt_every",
            "keep_checkpoints",
            "spike_min_history",
            "spike_norm_factor",
            "peak_tflops",
        ):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        check(
            not self.spike_factor or self.spike_factor > 1,
            "spike_factor",
            f"must be > 1 (or 0 = off), got {self.spike_factor}",
        )
        check(
            self.batch % self.grad_accum == 0,
            "batch",
            f"{self.batch} must be a multiple of train.grad_accum={self.grad_accum}",
        )
        check(self.dist_timeout_s > 0, "dist_timeout_s", f"must be > 0, got {self.dist_timeout_s}")

    def micro_batch(self, data_parallel: int) -> int:
        """Sequences per forward on each data-parallel rank."""
        per = data_parallel * self.grad_accum
        if self.batch % per:
            raise ConfigError(
                "train.batch",
                f"{self.batch} must be a multiple of data-parallel size × train.grad_accum"
                f" = {data_parallel} × {self.grad_accum}",
            )
        return self.batch // per


@dataclass(frozen=True)
class DataConfig(Section):
    """What a run trains on (the ``[data]`` table); ``build(model_config)``
    gives the (train, validation) data factories."""

    table = "data"

    shards: str = knob("", "directory of a token shard set (manifest.json) to train on; wins over tokens")
    val_shards: str = knob("", "shard set for validation (with data.shards; empty = none)")
    tokens: str = knob("", "token file: .npy, or raw .bin of token_dtype; empty = bytes of the stdlib's sources")
    token_dtype: Literal["uint8", "uint16", "int32", "uint32", "int64"] = knob("uint16", "dtype of a raw .bin token file")
    val_fraction: float = knob(0.02, "tail of the tokens held out for validation")
    embedded_bytes: int = knob(4_000_000, "bytes of stdlib sources read for the embedded corpus")
    tokenizer: str = knob("", "tokenizer.json copied beside the run; empty = UTF-8 bytes as ids")
    eos_id: int | None = knob(None, "document separator: positions restart after it (doc masking)")
    shuffle: bool = knob(True, "shuffle training sequences each epoch")

    def validate(self) -> None:
        check(
            0 < self.val_fraction < 1,
            "val_fraction",
            f"must be in (0, 1), got {self.val_fraction}",
        )
        check(self.embedded_bytes >= 1, "embedded_bytes", f"must be >= 1, got {self.embedded_bytes}")


@dataclass(frozen=True)
class TrainConfig(Section):
    """A whole run: model, optimizer, schedule, loop, data, objective and parallelism."""

    model: ModelConfig = section(ModelConfig)
    optim: OptimConfig = section(OptimConfig)
    schedule: ScheduleConfig = section(ScheduleConfig)
    train: LoopConfig = section(LoopConfig)
    data: DataConfig = section(DataConfig)
    objective: ObjectiveConfig = section(ObjectiveConfig)
    parallel: ParallelConfig = section(ParallelConfig)

    def validate(self) -> None:
        check(
            self.train.seq <= self.model.max_seq_len,
            "train.seq",
            f"{self.train.seq} exceeds model.max_seq_len={self.model.max_seq_len}",
        )
        try:  # schedule errors (warmup > steps) at load time
            self.schedule.factor(self.train.steps)
        except ValueError as e:
            raise ConfigError("", str(e)) from None
        tp, m = self.parallel.tp, self.model
        if tp > 1:
            check(m.n_heads % tp == 0, "parallel.tp", f"{tp} does not divide model.n_heads={m.n_heads}")
            check(
                m.kv_heads % tp == 0, "parallel.tp", f"{tp} does not divide the kv heads ({m.kv_heads})"
            )
            check(
                m.vocab_size % tp == 0,
                "parallel.tp",
                f"{tp} does not divide model.vocab_size={m.vocab_size}",
            )
            check(
                m.hidden_dim % tp == 0,
                "parallel.tp",
                f"{tp} does not divide the MLP's hidden size ({m.hidden_dim})",
            )
            check(
                not self.parallel.sequence_parallel or self.train.seq % tp == 0,
                "train.seq",
                f"{self.train.seq} is not divisible by parallel.tp={tp} (sequence parallelism)",
            )
        pp = self.parallel.pp
        if pp > 1:
            stages = pp * self.parallel.pp_virtual
            check(
                m.n_layers >= stages,
                "parallel.pp",
                f"{stages} stages (pp × pp_virtual) for model.n_layers={m.n_layers} "
                "(fewer layers than stages)",
            )
            check(
                not m.tie_embeddings,
                "model.tie_embeddings",
                "must be false under pipeline parallelism (embedding and head sit on different stages)",
            )
            check(
                self.objective.name == "causal_lm" and self.train.z_loss == 0,
                "objective.name",
                "pipeline parallelism trains causal_lm without z_loss",
            )
        check(
            not (
                self.parallel.backend == "torch"
                and self.parallel.zero == 1
                and self.train.dtype == "fp16"
            ),
            "train.dtype",
            "fp16's loss scaler sees only the owned gradients under parallel.zero = 1; use bf16",
        )
        if self.parallel.backend == "deepspeed":
            check(
                self.optim.name == "adamw",
                "optim.name",
                "must be adamw under parallel.backend = 'deepspeed': ZeRO hands the optimizer "
                "flat partitions of the parameters, and Muon orthogonalizes whole matrices",
            )
        mask_id = self.objective.mask_id
        check(
            mask_id < self.model.vocab_size,
            "objective.mask_id",
            f"{mask_id} is outside model.vocab_size={self.model.vocab_size}",
        )
        eos = self.data.eos_id
        check(
            eos is None or 0 <= eos < self.model.vocab_size,
            "data.eos_id",
            f"{eos} is outside model.vocab_size={self.model.vocab_size}",
        )
