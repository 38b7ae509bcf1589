"""Loss normalization: a step's loss is its summed loss over the target tokens
of every micro-batch divided by their global count, so micro-batches with
unequal numbers of valid targets give exactly the gradient of one big batch
(a per-micro-batch mean would weigh their tokens unequally)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fastllm.train import DataSpec, Trainer
from fastllm.train.objectives import IGNORE

from .helpers import MODEL, config


class FixedRows:
    """The same global batch every step, cut into ``spec.batch_size`` rows per
    micro-batch, with labels masked so the micro-batches' valid counts differ."""

    def __init__(self, spec: DataSpec, rows: int = 8, seq: int = 16) -> None:
        g = torch.Generator().manual_seed(7)
        self.ids = torch.randint(0, MODEL["vocab_size"], (rows, seq + 1), generator=g)
        self.labels = self.ids[:, 1:].clone()
        # Row r keeps only its first 2 + 2r labels: 2, 4, ..., 16 valid tokens.
        for r in range(rows):
            self.labels[r, 2 + 2 * r :] = IGNORE
        self.rows, self.per = rows, spec.batch_size
        self.pos = 0

    def __iter__(self):
        while True:
            i = self.pos % self.rows
            self.pos += self.per
            yield {
                "input_ids": self.ids[i : i + self.per, :-1],
                "labels": self.labels[i : i + self.per],
            }

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = state["pos"]


def _rows(spec: DataSpec) -> FixedRows:
    return FixedRows(spec)


def _grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()}


def test_four_unequal_micro_batches_equal_one_batch(tmp_path):
    quiet = {"log": lambda _: None}
    one = Trainer(config(tmp_path / "a", train={"batch": 8, "clip": 0.0}), _rows, **quiet)
    four = Trainer(
        config(tmp_path / "b", train={"batch": 8, "grad_accum": 4, "clip": 0.0}), _rows, **quiet
    )
    assert four.micro_batch == 2
    # The valid counts of the 4 micro-batches: 2+4, 6+8, 10+12, 14+16 — all different.
    a, b = one.train_step(), four.train_step()
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    ga, gb = _grads(one), _grads(four)
    for name, g in ga.items():
        torch.testing.assert_close(gb[name], g, rtol=1e-5, atol=1e-7)

    # The reference: one forward over all 8 rows, mean over the 72 valid labels.
    ref = Trainer(config(tmp_path / "c", train={"batch": 8}), _rows, **quiet)
    rows = FixedRows(DataSpec(8, 16))
    with torch.no_grad():
        logits = ref.model(rows.ids[:, :-1])
    valid = rows.labels != IGNORE
    assert int(valid.sum()) == 72
    logp = torch.log_softmax(logits.float(), -1)
    nll = -logp.gather(-1, rows.labels.clamp(min=0)[..., None])[..., 0]
    assert a["loss"] == pytest.approx(float(nll[valid].mean()), rel=1e-5)
    # A mean per micro-batch, averaged, would differ (the tokens weigh unequally).
    per_micro = torch.stack(
        [nll[i : i + 2][valid[i : i + 2]].mean() for i in range(0, 8, 2)]
    ).mean()
    assert abs(float(per_micro) - a["loss"]) > 1e-4
