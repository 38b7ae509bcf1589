"""The three objectives against hand-written reference losses, and their
attention: causal sees only the past, prefix-LM sees its whole prefix,
masked-LM sees the whole row."""

from __future__ import annotations

import math

import pytest
import torch

from fastllm.config import ConfigError
from fastllm.model import Decoder, ModelConfig
from fastllm.train import CausalLM, MaskedLM, PrefixLM, Trainer
from fastllm.train.objectives import IGNORE

from .helpers import MODEL, config, data

V, T, B = MODEL["vocab_size"], 12, 3


@pytest.fixture(scope="module")
def model() -> Decoder:
    torch.manual_seed(0)
    return Decoder(ModelConfig(**MODEL)).eval()


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T + 1), generator=g)
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:].clone()}


def _nll(logits: torch.Tensor, b: int, q: int, target: int) -> float:
    """-log p(target) at row b, position q, by hand: max-shifted log-sum-exp."""
    row = logits[b, q].double()
    m = float(row.max())
    lse = m + math.log(sum(math.exp(float(x) - m) for x in row))
    return lse - float(row[target])


def _attends(model: Decoder, q: int, k: int, **kwargs) -> bool:
    """Whether position q's logits change when token k changes."""
    ids = _batch()["input_ids"][:1]
    other = ids.clone()
    other[0, k] = (other[0, k] + 1) % V
    with torch.no_grad():
        a, b = model(ids, **kwargs), model(other, **kwargs)
    return not torch.allclose(a[0, q], b[0, q])


def test_causal_lm_equals_the_hand_written_sum(model):
    batch = _batch()
    batch["labels"][0, 3:] = IGNORE
    out = CausalLM()(model, batch)
    with torch.no_grad():
        logits = model(batch["input_ids"])
    ref = sum(
        _nll(logits, b, q, int(batch["labels"][b, q]))
        for b in range(B)
        for q in range(T)
        if batch["labels"][b, q] != IGNORE
    )
    assert int(out.tokens) == B * T - (T - 3)
    assert float(out.loss.detach()) == pytest.approx(ref, rel=1e-5)
    assert float(out.metrics["loss"]) == pytest.approx(ref, rel=1e-5)
    assert not _attends(model, 2, 5) and _attends(model, 5, 2)


def test_causal_lm_z_loss_adds_the_logsumexp_square(model):
    batch = _batch()
    out = CausalLM(z_loss=1e-2)(model, batch)
    with torch.no_grad():
        logits = model(batch["input_ids"]).double()
    z = float(logits.logsumexp(-1).square().sum())
    assert float(out.metrics["z_loss"]) == pytest.approx(z, rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(
        float(out.metrics["loss"]) + 1e-2 * z, rel=1e-5
    )


def test_prefix_lm_loss_after_the_prefix_only(model):
    obj = PrefixLM()
    batch = obj.prepare(_batch(), torch.Generator().manual_seed(3))
    prefix = batch["prefix_len"]
    assert prefix.shape == (B,) and bool(((prefix >= 1) & (prefix < T)).all())
    out = obj(model, batch)
    ref, n = 0.0, 0
    for b in range(B):
        s = int(prefix[b])
        # The reference: each row alone, with its prefix as an int.
        with torch.no_grad():
            logits = model(batch["input_ids"][b : b + 1], prefix_len=s)
        for q in range(s - 1, T):  # the first target is the token right after the prefix
            ref += _nll(logits, 0, q, int(batch["labels"][b, q]))
            n += 1
    assert int(out.tokens) == n
    assert float(out.loss.detach()) == pytest.approx(ref, rel=1e-5)
    # Inside the prefix attention is bidirectional; after it, causal.
    assert _attends(model, 1, 4, prefix_len=6) and not _attends(model, 7, 9, prefix_len=6)
    # A given prefix_len (a prompt) is kept.
    given = obj.prepare({**_batch(), "prefix_len": torch.tensor([2, 5, 9])}, torch.Generator())
    assert given["prefix_len"].tolist() == [2, 5, 9]
    assert (given["labels"][1, :4] == IGNORE).all() and (given["labels"][1, 4:] != IGNORE).all()


def test_masked_lm_masks_bert_style_and_sees_the_whole_row(model):
    obj = MaskedLM(V, mask_id=V - 1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V - 1, (64, 512), generator=g)  # no mask id in the data
    big = obj.prepare({"input_ids": ids, "labels": ids.clone()}, g)
    chosen = big["labels"] != IGNORE
    assert (big["labels"][chosen] == ids[chosen]).all()  # the label is the original token
    assert (big["input_ids"][~chosen] == ids[~chosen]).all()  # only chosen tokens change
    n = int(chosen.sum())
    assert n / ids.numel() == pytest.approx(0.15, abs=0.005)
    masked = (big["input_ids"] == V - 1) & chosen
    kept = (big["input_ids"] == ids) & chosen
    other = chosen & ~masked & ~kept
    assert int(masked.sum()) / n == pytest.approx(0.8, abs=0.01)
    # Random replacements land on the original token 1 time in V.
    assert int(other.sum()) / n == pytest.approx(0.1 * (1 - 1 / V), abs=0.01)
    assert int(kept.sum()) / n == pytest.approx(0.1 + 0.1 / V, abs=0.01)

    batch = obj.prepare(_batch(), torch.Generator().manual_seed(1))
    out = obj(model, batch)
    with torch.no_grad():
        logits = model(batch["input_ids"], prefix_len=T)
    targets = [(b, q) for b in range(B) for q in range(T) if batch["labels"][b, q] != IGNORE]
    assert targets and int(out.tokens) == len(targets)
    ref = sum(_nll(logits, b, q, int(batch["labels"][b, q])) for b, q in targets)
    assert float(out.loss.detach()) == pytest.approx(ref, rel=1e-5)
    assert _attends(model, 1, 9, prefix_len=T)  # bidirectional


@pytest.mark.parametrize("name", ["prefix_lm", "masked_lm"])
def test_objectives_train_through_the_loop(tmp_path, name):
    cfg = config(tmp_path, train={"steps": 12, "batch": 8}, objective={"name": name})
    trainer = Trainer(cfg, *data(), log=lambda _: None)
    records = trainer.fit()
    assert records[-1]["loss"] < records[0]["loss"]
    # The random targets are a function of (seed, step, rank): a resumed run
    # draws the same ones, so its step equals the uninterrupted run's.
    again = Trainer(
        config(tmp_path / "x", train={"steps": 12, "batch": 8}, objective={"name": name}),
        *data(),
        log=lambda _: None,
    )
    assert [r["loss"] for r in again.fit(until=3)] == [r["loss"] for r in records[:3]]


def test_objective_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="objective.name: unknown objective 'mlm'"):
        config(tmp_path, objective={"name": "mlm"})
    with pytest.raises(ConfigError, match="objective.mask_id: 64 is outside model.vocab_size=64"):
        config(tmp_path, objective={"name": "masked_lm", "mask_id": 64})
    with pytest.raises(ConfigError, match="objective.random_prob"):
        config(tmp_path, objective={"replace_prob": 0.95, "random_prob": 0.1})
