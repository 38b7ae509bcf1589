"""RMSNorm (Zhang & Sennrich 2019), as in Llama: no mean, no bias."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalize in float32 even under bf16 autocast: the mean of squares of a
        # wide bf16 row loses the digits that matter for small activations.
        y = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x)
        return y * self.weight

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
