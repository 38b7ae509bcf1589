"""Training objectives: what a batch's loss is.

An :class:`Objective` turns a batch into a *summed* loss over its target
tokens, the number of those tokens, and summed metrics. The loop divides by
the target tokens of the whole optimizer step (all micro-batches, all
data-parallel ranks), so the gradient is that of one big batch whatever the
split. Three objectives share the decoder:

- ``causal_lm``: next-token cross-entropy on ``labels`` (plus the optional
  z-loss term);
- ``prefix_lm`` (T5/UniLM PrefixLM): each row is split at a random point; the
  prefix attends to itself in both directions and the rest is predicted
  causally (no loss inside the prefix, whose tokens it could see);
- ``masked_lm`` (BERT): 15% of the tokens are chosen, of which 80% are
  replaced by the mask id, 10% by a random token and 10% kept; attention is
  bidirectional and the loss is on the chosen tokens' originals.

``prepare`` draws whatever is random about the targets (split points, masked
positions) before any forward, so the loop can count the step's target
tokens first. Packages add objectives with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fastllm.config import Section, builder, check, knob

IGNORE = -100
Batch = dict[str, torch.Tensor]


@dataclass
class LossOutput:
    """One micro-batch's result: ``loss`` is summed over its ``tokens`` target
    tokens (float32, differentiable); ``metrics`` are sums too (``loss`` among
    them: the cross-entropy part that the loop logs)."""

    loss: torch.Tensor
    tokens: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """The interface: ``prepare`` (targets, before forward) then ``__call__``."""

    name: ClassVar[str] = ""

    def prepare(self, batch: Batch, generator: torch.Generator) -> Batch:
        """The batch with its targets decided (default: as the data gave them)."""
        return batch

    def targets(self, batch: Batch) -> torch.Tensor:
        """Target tokens of a prepared batch (the loss's normalizer)."""
        return (batch["labels"] != IGNORE).sum()

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        raise NotImplementedError


def token_loss_sums(
    logits: torch.Tensor, labels: torch.Tensor, z_loss: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and summed z-loss term logsumexp(logits)² (zero
    unless ``z_loss``) over the tokens whose label is not IGNORE, in float32."""
    flat = logits.flatten(0, 1).float()
    target = labels.flatten()
    ce = F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum")
    if not z_loss:
        return ce, torch.zeros((), device=ce.device)
    valid = target != IGNORE
    z = (flat.logsumexp(-1).square() * valid).sum()
    return ce, z


def _forward(model: nn.Module, batch: Batch, **kwargs: Any) -> torch.Tensor:
    return model(batch["input_ids"], position_ids=batch.get("position_ids"), **kwargs)


class CausalLM(Objective):
    """Next-token prediction on ``labels``; ``z_loss`` weighs logsumexp² (PaLM)."""

    name = "causal_lm"

    def __init__(self, z_loss: float = 0.0) -> None:
        self.z_loss = z_loss

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        logits = _forward(model, batch)
        ce, z = token_loss_sums(logits, batch["labels"], z_loss=self.z_loss > 0)
        metrics = {"loss": ce.detach()}
        loss = ce
        if self.z_loss:
            loss = ce + self.z_loss * z
            metrics["z_loss"] = z.detach()
        return LossOutput(loss, self.targets(batch), metrics)


class PrefixLM(Objective):
    """A random split per row: bidirectional prefix, causal suffix, loss on the suffix.

    With ``input_ids`` x and ``labels`` y (y[q] = x[q+1]), a prefix of ``s``
    tokens lets positions q < s see x[q+1] when q+1 < s, so only positions
    q >= s-1 are targets. ``s`` is uniform in [``min_prefix``, T-1], or the
    batch's own ``prefix_len`` [B] when it has one (a prompt, in SFT).
    """

    name = "prefix_lm"

    def __init__(self, min_prefix: int = 1) -> None:
        self.min_prefix = min_prefix

    def prepare(self, batch: Batch, generator: torch.Generator) -> Batch:
        ids = batch["input_ids"]
        B, T = ids.shape
        if "prefix_len" in batch:
            prefix = batch["prefix_len"].to(ids.device, torch.long)
        else:
            lo = min(self.min_prefix, T - 1)
            prefix = torch.randint(lo, T, (B,), generator=generator).to(ids.device)
        q = torch.arange(T, device=ids.device)
        labels = batch["labels"].masked_fill(q[None, :] < (prefix[:, None] - 1), IGNORE)
        return {**batch, "labels": labels, "prefix_len": prefix}

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        logits = _forward(model, batch, prefix_len=batch["prefix_len"])
        ce, _ = token_loss_sums(logits, batch["labels"])
        return LossOutput(ce, self.targets(batch), {"loss": ce.detach()})


class MaskedLM(Objective):
    """BERT's masked-LM on the decoder with bidirectional attention.

    Each token is chosen with probability ``mask_prob``; a chosen token is
    replaced by ``mask_id`` with probability ``replace_prob``, else by a
    uniformly random token with probability ``random_prob / (1 - replace_prob)``,
    else kept (BERT: 15%, 80/10/10, as HF's ``DataCollatorForLanguageModeling``).
    The label of a chosen position is its original token (not the next one).
    """

    name = "masked_lm"

    def __init__(
        self,
        vocab_size: int,
        mask_id: int,
        mask_prob: float = 0.15,
        replace_prob: float = 0.8,
        random_prob: float = 0.1,
    ) -> None:
        self.vocab_size = vocab_size
        self.mask_id = mask_id
        self.mask_prob = mask_prob
        self.replace_prob = replace_prob
        self.random_prob = random_prob

    def prepare(self, batch: Batch, generator: torch.Generator) -> Batch:
        ids = batch["input_ids"]
        shape = ids.shape

        def draw(p: float) -> torch.Tensor:
            return (torch.rand(shape, generator=generator) < p).to(ids.device)

        chosen = draw(self.mask_prob)
        replaced = chosen & draw(self.replace_prob)
        rest = 1.0 - self.replace_prob
        randomized = chosen & ~replaced & draw(self.random_prob / rest if rest > 0 else 0.0)
        random_ids = torch.randint(self.vocab_size, shape, generator=generator).to(ids.device)
        inputs = torch.where(replaced, torch.full_like(ids, self.mask_id), ids)
        inputs = torch.where(randomized, random_ids, inputs)
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
        return {**batch, "input_ids": inputs, "labels": labels}

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        T = batch["input_ids"].shape[1]
        logits = _forward(model, batch, prefix_len=T)  # the whole row is a "prefix"
        ce, _ = token_loss_sums(logits, batch["labels"])
        return LossOutput(ce, self.targets(batch), {"loss": ce.detach()})


@dataclass(frozen=True)
class ObjectiveConfig(Section):
    """The training objective (the ``[objective]`` table)."""

    table = "objective"

    OBJECTIVES: ClassVar[dict[str, Any]] = {}

    name: str = knob("causal_lm", "causal_lm, prefix_lm or masked_lm (or one a package registered)")
    min_prefix: int = knob(1, "prefix_lm: shortest random prefix in tokens")
    mask_prob: float = knob(0.15, "masked_lm: fraction of tokens chosen as targets")
    replace_prob: float = knob(0.8, "masked_lm: of the chosen, fraction replaced by mask_id")
    random_prob: float = knob(0.1, "masked_lm: of the chosen, fraction replaced by a random token")
    mask_id: int = knob(-1, "masked_lm: the mask token's id; -1 = the last id of the vocabulary")

    def validate(self) -> None:
        check(
            self.name in self.OBJECTIVES,
            "name",
            f"unknown objective {self.name!r}; expected one of {sorted(self.OBJECTIVES)}",
        )
        check(self.min_prefix >= 1, "min_prefix", f"must be >= 1, got {self.min_prefix}")
        check(0 < self.mask_prob <= 1, "mask_prob", f"must be in (0, 1], got {self.mask_prob}")
        for key in ("replace_prob", "random_prob"):
            check(0 <= getattr(self, key) <= 1, key, f"must be in [0, 1], got {getattr(self, key)}")
        check(
            self.replace_prob + self.random_prob <= 1,
            "random_prob",
            f"replace_prob + random_prob must be <= 1, got {self.replace_prob + self.random_prob}",
        )


def register(name: str, factory: Any) -> None:
    """Make ``objective.name = name`` build ``factory(objective_config, train_config)``."""
    ObjectiveConfig.OBJECTIVES[name] = factory


register("causal_lm", lambda o, c: CausalLM(c.train.z_loss))
register("prefix_lm", lambda o, c: PrefixLM(o.min_prefix))
register(
    "masked_lm",
    lambda o, c: MaskedLM(
        c.model.vocab_size,
        o.mask_id if o.mask_id >= 0 else c.model.vocab_size - 1,
        o.mask_prob,
        o.replace_prob,
        o.random_prob,
    ),
)


@builder(ObjectiveConfig)
def build_objective(config: ObjectiveConfig, train_config: Any) -> Objective:
    """``ObjectiveConfig.build(train_config)``: the objective it names."""
    return ObjectiveConfig.OBJECTIVES[config.name](config, train_config)
