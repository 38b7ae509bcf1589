"""``[parallel]``: how a run spreads over its processes.

The degrees multiply to the world size: ``pp × dp_replicate × dp_shard × tp``
(``dp_shard = -1`` takes what the others leave). They name the dimensions of
one device mesh, built once; every wrapper takes its sub-mesh:

- ``dp_replicate`` alone: DDP (every rank holds the whole model);
- ``dp_shard``: FSDP2 ``fully_shard`` per block then the root — ``zero = 3``
  reshards parameters after forward (ZeRO-3), ``zero = 2`` keeps them
  gathered until backward (ZeRO-2); with ``dp_replicate`` too: HSDP;
- ``zero = 1``: ZeRO-1 over all data-parallel ranks (:mod:`fastllm.parallel.zero`):
  whole parameters and gradients, each parameter's optimizer state on one
  owner rank;
- ``tp``: Megatron-style tensor parallelism (column-wise q/k/v and w1/w3,
  row-wise o and w2), with sequence parallelism on the norms and the
  vocabulary-parallel loss (``loss_parallel``: logits never gathered);
- ``pp``: pipeline stages (``torch.distributed.pipelining``, GPipe, 1F1B or
  interleaved 1F1B with ``pp_virtual`` stages per rank, over
  ``pp_microbatches``): the blocks split evenly, the embedding on the first
  stage, the final norm and head on the last;
- ``fsdp_one_process``: FSDP2 on a process group of one (the ZeRO-3 path and
  its mixed precision on a single GPU).

``backend = "deepspeed"`` hands data parallelism to a DeepSpeed engine
instead (:mod:`fastllm.parallel.deepspeed`): ZeRO stage ``zero`` (1, 2 or 3)
over every process, ``offload_optimizer`` / ``offload_param`` (stage 3) to the
CPU, bf16 from ``train.dtype``; the same model, objective, optimizer and
schedule. Its JSON config is generated from ours and written to
``<out_dir>/deepspeed.json`` (``deepspeed_config`` names a JSON of your own to
start from). tp and pp stay the torch backend's. Launch either way::

    torchrun --standalone --nproc_per_node 2 -m fastllm.train --config configs/tiny.toml --parallel.backend deepspeed --parallel.zero 2
    deepspeed --num_gpus 2 --module fastllm.train --config configs/tiny.toml --parallel.backend deepspeed --parallel.zero 3

Checks that need only the config run at load (heads divisible by ``tp``...);
the world size is known when the run starts, and :meth:`ParallelConfig.degrees`
checks it then, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastllm.config import ConfigError, Section, check, knob


@dataclass(frozen=True)
class Degrees:
    dp_replicate: int
    dp_shard: int
    tp: int
    pp: int = 1

    @property
    def dp(self) -> int:
        return self.dp_replicate * self.dp_shard

    @property
    def world(self) -> int:
        return self.pp * self.dp * self.tp


@dataclass(frozen=True)
class ParallelConfig(Section):
    """Data, fully-sharded and tensor parallelism (the ``[parallel]`` table)."""

    table = "parallel"

    backend: Literal["torch", "deepspeed"] = knob("torch", "data parallelism by torch (DDP/FSDP2, with tp and pp) or by a DeepSpeed ZeRO engine")
    dp_replicate: int = knob(1, "data-parallel replicas: DDP, or HSDP's replicate dimension with dp_shard")
    dp_shard: int = knob(-1, "FSDP2 sharding degree; -1 = the world size / (dp_replicate × tp)")
    tp: int = knob(1, "tensor-parallel degree")
    pp: int = knob(1, "pipeline-parallel degree (stages, one per rank of the pp dimension)")
    pp_schedule: Literal["gpipe", "1f1b", "interleaved_1f1b"] = knob(
        "1f1b", "pipeline schedule: gpipe, 1f1b or interleaved_1f1b (with pp_virtual stages per rank)"
    )
    pp_virtual: int = knob(
        1, "pipeline stages per rank (virtual stages): 1, or >= 2 for interleaved_1f1b"
    )
    pp_microbatches: int = knob(0, "pipeline micro-batches per forward/backward; 0 = pp")
    zero: int = knob(
        3,
        "ZeRO stage: 3 (FSDP2, parameters resharded after forward), 2 (FSDP2, kept until "
        "backward), 1 (optimizer states sharded; parameters and gradients whole); "
        "deepspeed: its stage 1, 2 or 3",
    )
    sequence_parallel: bool = knob(True, "tp: shard the norms' activations along the sequence")
    loss_parallel: bool = knob(
        True,
        "tp: cross-entropy on vocabulary-sharded logits (no all-gather of the logits); "
        "not under pp, whose stages pass plain tensors",
    )
    param_dtype: Literal["fp32", "bf16"] = knob("fp32", "FSDP2 mixed precision: dtype of the gathered parameters")
    reduce_dtype: Literal["fp32", "bf16"] = knob("fp32", "FSDP2 mixed precision: dtype of gradient reduction")
    cpu_offload: bool = knob(False, "FSDP2: keep sharded parameters, gradients and optimizer states on the CPU")
    fsdp_one_process: bool = knob(
        False,
        "wrap with FSDP2 even on one process (the ZeRO-3 code path and mixed-precision "
        "policy on one GPU; a process group of one is created)",
    )
    offload_optimizer: bool = knob(False, "deepspeed: optimizer states and the optimizer step on the CPU")
    offload_param: bool = knob(False, "deepspeed: parameters on the CPU between uses (zero = 3)")
    deepspeed_config: str = knob("", "deepspeed: a DeepSpeed JSON to start from; empty = generated from this config")

    def validate(self) -> None:
        check(self.dp_replicate >= 1, "dp_replicate", f"must be >= 1, got {self.dp_replicate}")
        check(
            self.dp_shard >= 1 or self.dp_shard == -1,
            "dp_shard",
            f"must be >= 1 or -1 (the rest), got {self.dp_shard}",
        )
        check(self.tp >= 1, "tp", f"must be >= 1, got {self.tp}")
        check(self.pp >= 1, "pp", f"must be >= 1, got {self.pp}")
        if self.pp_schedule == "interleaved_1f1b":
            check(self.pp_virtual >= 2, "pp_virtual", f"interleaved_1f1b needs >= 2 stages per rank, got {self.pp_virtual}")
        else:
            check(
                self.pp_virtual == 1,
                "pp_virtual",
                f"{self.pp_virtual} stages per rank need pp_schedule = \"interleaved_1f1b\"",
            )
        check(
            self.pp_microbatches == 0 or self.pp_microbatches >= self.pp,
            "pp_microbatches",
            f"{self.pp_microbatches} is fewer than the pipeline stages (pp={self.pp})",
        )
        check(self.zero in (1, 2, 3), "zero", f"must be 1, 2 or 3, got {self.zero}")
        check(
            not (self.zero == 1 and self.cpu_offload),
            "cpu_offload",
            "offload is FSDP2's (zero = 2 or 3); zero = 1 keeps parameters on the device",
        )
        if self.backend == "deepspeed":
            self._check_deepspeed()
        for key in ("offload_optimizer", "offload_param", "deepspeed_config"):
            check(
                self.backend == "deepspeed" or not getattr(self, key),
                key,
                "is for backend = 'deepspeed' (the torch backend offloads with cpu_offload)",
            )

    def _check_deepspeed(self) -> None:
        check(
            self.tp == 1 and self.pp == 1,
            "backend",
            f"deepspeed runs data parallelism only (ZeRO over every process); tp={self.tp} and "
            f"pp={self.pp} are the torch backend's (DTensor, torch.distributed.pipelining) "
            "and do not compose with a DeepSpeed engine: use backend = 'torch' for them",
        )
        check(
            self.dp_replicate == 1,
            "dp_replicate",
            f"deepspeed shards over every process (dp_shard = the world size): leave it 1, got "
            f"{self.dp_replicate}",
        )
        check(self.zero in (1, 2, 3), "zero", f"must be 1, 2 or 3 under deepspeed, got {self.zero}")
        check(
            not self.offload_param or self.zero == 3,
            "offload_param",
            f"needs zero = 3 (DeepSpeed offloads parameters at stage 3 only), got zero = {self.zero}",
        )
        check(
            not self.cpu_offload,
            "cpu_offload",
            "is FSDP2's; under deepspeed use offload_optimizer (and offload_param at zero = 3)",
        )
        for key in ("param_dtype", "reduce_dtype"):
            check(
                getattr(self, key) == "fp32",
                key,
                "is FSDP2's mixed precision; under deepspeed train.dtype sets the precision",
            )

    @property
    def microbatches(self) -> int:
        """Pipeline micro-batches per schedule step."""
        return self.pp_microbatches or self.pp

    def degrees(self, world_size: int) -> Degrees:
        """The degrees for ``world_size`` processes (``dp_shard = -1`` filled in);
        a product that is not the world size is an error naming the fields."""
        rest = self.pp * self.dp_replicate * self.tp
        shard = self.dp_shard
        if shard == -1:
            if world_size % rest:
                raise ConfigError(
                    "parallel",
                    f"world size {world_size} is not divisible by pp × dp_replicate × tp = "
                    f"{self.pp} × {self.dp_replicate} × {self.tp}",
                )
            shard = world_size // rest
        d = Degrees(self.dp_replicate, shard, self.tp, self.pp)
        if d.world != world_size:
            raise ConfigError(
                "parallel",
                f"pp × dp_replicate × dp_shard × tp = {d.pp} × {d.dp_replicate} × {d.dp_shard} × "
                f"{d.tp} = {d.world}, but the world size is {world_size}",
            )
        return d
