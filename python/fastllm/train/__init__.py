"""The training path: config, loop, checkpoints, metrics, export.

>>> from fastllm.train import TrainConfig, Trainer, TokenStream
>>> cfg = TrainConfig.load("configs/tiny.toml", ["--train.steps", "50"])
>>> Trainer(cfg, TokenStream.factory(train_tokens), TokenStream.factory(val_tokens, shuffle=False)).fit()
"""

from fastllm.train.config import DataConfig, LoopConfig, TrainConfig
from fastllm.train.data import Batched, Batches, DataSpec, TokenStream
from fastllm.train.guard import SpikeGuard
from fastllm.train.loop import Trainer, apply_activation_checkpointing

__all__ = [
    "Batched",
    "Batches",
    "DataConfig",
    "DataSpec",
    "LoopConfig",
    "SpikeGuard",
    "TokenStream",
    "TrainConfig",
    "Trainer",
    "apply_activation_checkpointing",
]
