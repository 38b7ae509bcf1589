"""build_optimizer on the real decoder: who gets Muon, who gets AdamW and decay,
overrides, one optimizer object with a working state_dict and scheduler, compile."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from fastllm.model import Decoder, ModelConfig, cross_entropy
from fastllm.optim import (
    Muon,
    OptimConfig,
    ScheduleConfig,
    build_optimizer,
    build_scheduler,
    route_parameters,
    routing_summary,
)

SMALL = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)
HIDDEN = (
    "attention.wq",
    "attention.wk",
    "attention.wv",
    "attention.wo",
    "feed_forward.w1",
    "feed_forward.w2",
    "feed_forward.w3",
)


def model(**kw) -> Decoder:
    torch.manual_seed(0)
    return Decoder(ModelConfig(**{**SMALL, **kw}))


def batch(seed=0):
    data = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(seed))
    return data[:, :-1], data[:, 1:]


def train_step(m, opt, seed=0):
    x, y = batch(seed)
    loss = cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_routing_on_the_decoder():
    m = model(qkv_bias=True, tie_embeddings=False)
    routes = {r.name: r for r in route_parameters(m, OptimConfig(name="muon", weight_decay=0.1))}
    assert set(routes) == {n for n, _ in m.named_parameters()}
    muon = {n for n, r in routes.items() if r.optimizer == "muon"}
    assert muon == {f"layers.{i}.{h}.weight" for i in range(2) for h in HIDDEN}
    assert routes["tok_embeddings.weight"].optimizer == "adamw"
    assert routes["tok_embeddings.weight"].weight_decay == 0.0
    assert routes["output.weight"].role == "head" and routes["output.weight"].weight_decay == 0.1
    for n, r in routes.items():
        if n.endswith("norm.weight") or n.endswith(".bias"):
            assert r.optimizer == "adamw" and r.weight_decay == 0.0, n
    summary = routing_summary(list(routes.values()))
    assert "muon" in summary and "embedding" in summary and "head" in summary


def test_tied_head_is_an_embedding_without_decay():
    routes = route_parameters(model(), OptimConfig(name="muon"))
    names = [r.name for r in routes]
    assert "output.weight" not in names and names.count("tok_embeddings.weight") == 1
    (emb,) = [r for r in routes if r.name == "tok_embeddings.weight"]
    assert emb.role == "embedding" and emb.weight_decay == 0.0


def test_adamw_only_has_decay_and_no_decay_groups():
    m = model()
    opt = build_optimizer(m, OptimConfig(name="adamw", lr=1e-3, weight_decay=0.05))
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(".w" in n for n in decay["param_names"])
    assert set(no_decay["param_names"]) >= {"tok_embeddings.weight", "norm.weight"}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


def test_overrides():
    m = model(tie_embeddings=False)
    cfg = OptimConfig(name="muon", adamw_params=("layers.0.*",), muon_params=("output.weight",))
    routes = {r.name: r for r in route_parameters(m, cfg)}
    assert routes["output.weight"].optimizer == "muon"
    assert routes["layers.0.attention.wq.weight"].optimizer == "adamw"
    assert routes["layers.0.attention.wq.weight"].weight_decay == cfg.weight_decay
    assert routes["layers.1.attention.wq.weight"].optimizer == "muon"
    with pytest.raises(ValueError, match=r"'\*norm\*' matches 'layers.0.attention_norm.weight'"):
        route_parameters(m, OptimConfig(name="muon", muon_params=("*norm*",)))
    with pytest.raises(ValueError, match="'nothing.*' matches no parameter"):
        route_parameters(m, OptimConfig(name="muon", adamw_params=("nothing.*",)))


def test_config_from_dict_names_bad_keys():
    cfg = OptimConfig.from_dict({"name": "muon", "betas": [0.9, 0.99], "muon_params": ["a*"]})
    assert cfg.betas == (0.9, 0.99) and cfg.muon_params == ("a*",)
    with pytest.raises(ValueError, match="optim.muon_lrr: unknown key"):
        OptimConfig.from_dict({"muon_lrr": 0.1})
    with pytest.raises(ValueError, match="optim.muon_scale"):
        OptimConfig(muon_scale="kj")
    with pytest.raises(ValueError, match="optim.muon_ns_dtype: must be one of auto, bf16, fp32"):
        OptimConfig(muon_ns_dtype="fp16")


def test_ns_dtype_from_the_config():
    m = model()
    assert build_optimizer(m, OptimConfig(name="muon")).param_groups[0]["ns_dtype"] is None
    opt = build_optimizer(m, OptimConfig.from_dict({"name": "muon", "muon_ns_dtype": "bf16"}))
    assert opt.param_groups[0]["ns_dtype"] == torch.bfloat16
    with pytest.raises(ValueError, match=r"optim.betas: expected 2 items"):
        OptimConfig.from_dict({"betas": [0.9]})


def test_one_optimizer_object_that_trains():
    m = model()
    opt = build_optimizer(m, OptimConfig(name="muon", muon_lr=0.02, lr=3e-3))
    assert isinstance(opt, Muon)
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]
    losses = [train_step(m, opt) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]


def test_state_dict_round_trip():
    cfg = OptimConfig(name="muon", weight_decay=0.1, muon_weight_decay=0.05)
    a = model()
    opt_a = build_optimizer(a, cfg)
    for s in range(3):
        train_step(a, opt_a, seed=s)
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "optim": opt_a.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)

    b = model()
    b.load_state_dict(saved["model"])
    opt_b = build_optimizer(b, cfg)
    opt_b.load_state_dict(saved["optim"])
    assert opt_b.param_groups[0]["param_names"] == opt_a.param_groups[0]["param_names"]
    for s in range(3, 6):
        assert train_step(a, opt_a, seed=s) == train_step(b, opt_b, seed=s)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_loads_a_state_dict_saved_without_ns_dtype():
    cfg = OptimConfig(name="muon")
    a = model()
    opt_a = build_optimizer(a, cfg)
    train_step(a, opt_a)
    old = copy.deepcopy(opt_a.state_dict())
    for g in old["param_groups"]:
        del g["ns_dtype"]  # the format before ns_dtype existed
    b = model()
    opt_b = build_optimizer(b, cfg)
    opt_b.load_state_dict(old)
    assert all(g["ns_dtype"] is None for g in opt_b.param_groups)
    assert set(opt_b.state_dict()["state"]) == set(old["state"])
    train_step(b, opt_b)


def test_scheduler_drives_every_group():
    m = model()
    opt = build_optimizer(m, OptimConfig(name="muon", muon_lr=0.02, lr=1e-3))
    sched = build_scheduler(
        opt, ScheduleConfig(name="cosine", warmup_steps=4, min_ratio=0.1), total_steps=20
    )
    factor = sched.lr_lambdas[0]
    for step in range(10):
        train_step(m, opt, seed=step)
        sched.step()
        f = factor(step + 1)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * f)
        assert opt.param_groups[1]["lr"] == pytest.approx(1e-3 * f)
    # The scheduler's state round-trips, with the schedule's fields (LambdaLR
    # saves a callable object's __dict__; its class comes from the config).
    state = copy.deepcopy(sched.state_dict())
    sched2 = build_scheduler(opt, ScheduleConfig(name="cosine"), total_steps=5)
    sched2.load_state_dict(state)
    assert sched2.lr_lambdas[0] == factor and sched2.last_epoch == 10


def test_compiled_model_routes_the_same_and_trains():
    m = model()
    compiled = torch.compile(m, backend="eager")
    plain = [(r.name, r.optimizer) for r in route_parameters(m, OptimConfig(name="muon"))]
    wrapped = [(r.name, r.optimizer) for r in route_parameters(compiled, OptimConfig(name="muon"))]
    assert plain == wrapped
    opt = build_optimizer(compiled, OptimConfig(name="muon"))
    losses = [train_step(compiled, opt, seed=0) for _ in range(5)]
    assert losses[-1] < losses[0]
