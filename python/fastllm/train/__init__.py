"""The training path: config, loop, objectives, engine, data, checkpoints, metrics.

>>> from fastllm.train import TrainConfig, Trainer, TokenStream
>>> cfg = TrainConfig.load("configs/tiny.toml", ["--train.steps", "50"])
>>> Trainer(cfg, TokenStream.factory(train_tokens), TokenStream.factory(val_tokens, shuffle=False)).fit()
"""

from fastllm.train.config import DataConfig, LoopConfig, TrainConfig
from fastllm.train.data import Batched, Batches, DataSpec, TokenStream
from fastllm.train.engine import Engine
from fastllm.train.guard import SpikeGuard
from fastllm.train.loop import Trainer
from fastllm.train.objectives import CausalLM, LossOutput, MaskedLM, Objective, PrefixLM

__all__ = [
    "Batched",
    "Batches",
    "CausalLM",
    "DataConfig",
    "DataSpec",
    "Engine",
    "LoopConfig",
    "LossOutput",
    "MaskedLM",
    "Objective",
    "PrefixLM",
    "SpikeGuard",
    "TokenStream",
    "TrainConfig",
    "Trainer",
]
