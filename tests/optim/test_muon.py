"""Muon's update: equal to torch.optim.Muon where the semantics match, the
documented norm for each scale rule, decoupled weight decay, the AdamW groups."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from fastllm.optim import Muon, default_ns_dtype, newton_schulz, update_scale

SHAPES = {"square": (32, 32), "tall": (48, 16), "wide": (16, 48)}

# (our scale, torch's adjust_lr_fn, shapes where they agree):
# torch "original" is sqrt(max(1, A/B)) with (A, B) = (out, in) = kellerjordan;
# on square and wide matrices that is 1 = naive, on tall and square it is
# sqrt(out/in) = mup. "match_rms_adamw" is 0.2·sqrt(max(A, B)) = moonlight.
MATCHES = [
    ("kellerjordan", "original", ["square", "tall", "wide"]),
    ("moonlight", "match_rms_adamw", ["square", "tall", "wide"]),
    ("naive", "original", ["square", "wide"]),
    ("mup", "original", ["square", "tall"]),
]


def grads(shape, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for _ in range(n)]


def run(opt_cls, shape, gs, **kw):
    p = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(9)))
    opt = opt_cls([p], **kw)
    for g in gs:
        p.grad = g.clone()
        opt.step()
    return p.detach()


@pytest.mark.parametrize(
    "scale, adjust, kind",
    [(s, a, k) for s, a, kinds in MATCHES for k in kinds],
)
@pytest.mark.parametrize("nesterov", [True, False])
def test_equals_torch_muon(scale, adjust, kind, nesterov):
    shape = SHAPES[kind]
    gs = grads(shape, 4)
    common = dict(lr=0.02, momentum=0.95, nesterov=nesterov, weight_decay=0.1, ns_steps=5)
    # torch.optim.Muon always iterates in bf16; ours defaults to fp32 on CPU.
    ours = run(Muon, shape, gs, scale=scale, ns_dtype=torch.bfloat16, **common)
    theirs = run(torch.optim.Muon, shape, gs, adjust_lr_fn=adjust, **common)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "shape, expected",
    [
        # (d_out, d_in): naive, kellerjordan, mup, moonlight
        ((64, 16), {"naive": 1.0, "kellerjordan": 2.0, "mup": 2.0, "moonlight": 1.6}),
        ((16, 64), {"naive": 1.0, "kellerjordan": 1.0, "mup": 0.5, "moonlight": 1.6}),
        ((36, 36), {"naive": 1.0, "kellerjordan": 1.0, "mup": 1.0, "moonlight": 1.2}),
    ],
)
def test_each_scale_gives_the_documented_update_norm(shape, expected):
    (g,) = grads(shape, 1, seed=1)
    o = newton_schulz(g, dtype=torch.float32)  # Muon's default on CPU
    for scale, factor in expected.items():
        assert update_scale(scale, shape) == pytest.approx(factor)
        p = torch.nn.Parameter(torch.zeros(shape))
        p.grad = g.clone()
        Muon([p], lr=1.0, momentum=0.0, nesterov=False, scale=scale).step()
        update = -p.detach()
        # The applied update is exactly scale · msign-approximation...
        torch.testing.assert_close(update, factor * o)
        # ...so its spectral norm is `factor` up to the NS band,
        spectral = torch.linalg.matrix_norm(update.double(), ord=2).item()
        assert 0.65 * factor < spectral < 1.25 * factor
        # and moonlight's RMS is AdamW's typical 0.2 (up to the band).
        if scale == "moonlight":
            rms = update.pow(2).mean().sqrt().item()
            assert 0.65 * 0.2 < rms < 1.25 * 0.2


@pytest.mark.parametrize("nesterov", [True, False])
def test_default_ns_dtype_is_fp32_on_cpu_and_near_bf16(nesterov):
    assert default_ns_dtype("cpu") == torch.float32
    assert default_ns_dtype("cuda") == torch.bfloat16
    shape = SHAPES["tall"]
    gs = grads(shape, 4)
    common = dict(lr=0.02, momentum=0.95, nesterov=nesterov, weight_decay=0.1)
    default = run(Muon, shape, gs, **common)
    fp32 = run(Muon, shape, gs, ns_dtype=torch.float32, **common)
    bf16 = run(Muon, shape, gs, ns_dtype=torch.bfloat16, **common)
    assert torch.equal(default, fp32)
    # The two dtypes differ by bf16 rounding amplified by the iteration: about
    # 1-2% of each update (measured <= 2.2% on random matrices), times 4 steps.
    start = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    moved = (fp32 - start).norm()
    assert 0 < (fp32 - bf16).norm() < 0.04 * moved


def test_mixed_shapes_in_one_group_equal_one_optimizer_per_matrix():
    # Tall and wide matrices of one transposed shape share an NS batch but not
    # a scale; matrices of other shapes form batches of their own; one has no grad,
    # and in the second step another one has none (the cached batching plan changes).
    gen = torch.Generator().manual_seed(5)
    shapes = [(48, 16), (16, 48), (48, 16), (32, 32), (16, 48), (8, 24), (32, 32)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    steps = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(3)]
    for scale in ("kellerjordan", "mup"):
        params = [torch.nn.Parameter(w.clone()) for w in start]
        opt = Muon(params, lr=0.02, weight_decay=0.1, scale=scale)
        alone = [torch.nn.Parameter(w.clone()) for w in start]
        opts = [Muon([p], lr=0.02, weight_decay=0.1, scale=scale) for p in alone]
        for k, gs in enumerate(steps):
            for i, (p, q, g) in enumerate(zip(params, alone, gs, strict=True)):
                none = i == 5 or (k == 1 and i == 2)
                p.grad = None if none else g.clone()
                q.grad = None if none else g.clone()
            opt.step()
            for o in opts:
                o.step()
        for p, q in zip(params, alone, strict=True):
            # Batched and single matmuls may block the sums differently (fp32).
            torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-6)
        assert torch.equal(params[5].detach(), start[5])


def test_weight_decay_is_decoupled():
    p = torch.nn.Parameter(torch.ones(8, 4))
    p.grad = torch.zeros(8, 4)  # orthogonalizes to zero: only the decay acts
    Muon([p], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(p.detach(), torch.full((8, 4), 1 - 0.1 * 0.5))


def test_momentum_accumulates():
    # A gradient seen once keeps moving the weight through the buffer.
    p = torch.nn.Parameter(torch.zeros(8, 8))
    opt = Muon([p], lr=1.0, momentum=0.9, nesterov=False)
    g = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    p.grad = g.clone()
    opt.step()
    first = p.detach().clone()
    p.grad = torch.zeros(8, 8)
    opt.step()
    second = p.detach() - first
    buf = opt.state[p]["momentum_buffer"]
    torch.testing.assert_close(buf, 0.9 * 0.1 * g)
    # The second update is the orthogonalized buffer: the direction of g again.
    torch.testing.assert_close(second, -newton_schulz(buf, dtype=torch.float32))
    cos = (second * first).sum() / (second.norm() * first.norm())
    assert cos > 0.99


def test_adamw_groups_equal_torch_adamw():
    gen = torch.Generator().manual_seed(3)
    shapes = [(16,), (8, 4), (5, 3, 2)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ours = Muon(
        [{"params": params, "use_muon": False, "lr": 1e-2, "weight_decay": 0.1}],
        lr=0.02,
        betas=(0.9, 0.99),
        eps=1e-8,
    )
    theirs = torch.optim.AdamW(
        ref, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-8, foreach=False
    )
    for _ in range(5):
        for p, q in zip(params, ref, strict=True):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    for p, q in zip(params, ref, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-7)


def test_rejects_non_matrices_and_bad_settings():
    with pytest.raises(ValueError, match=r"2-D matrices only; a parameter has shape \(4,\)"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.02)
    with pytest.raises(ValueError, match=r"parameter 'norm.weight' has shape \(4,\)"):
        Muon([{"params": [("norm.weight", torch.nn.Parameter(torch.zeros(4)))]}], lr=0.02)
    with pytest.raises(ValueError, match="scale must be one of"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.02, scale="kj")
    with pytest.raises(ValueError, match="ns_dtype must be a torch.dtype or None"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.02, ns_dtype="bf16")
    with pytest.raises(ValueError, match="momentum must be in"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.02, momentum=1.0)
    with pytest.raises(ValueError, match="muon scale must be one of"):
        update_scale("spectral", (4, 4))


def test_skips_params_without_grad_and_keeps_state_per_param():
    a, b = torch.nn.Parameter(torch.randn(4, 4)), torch.nn.Parameter(torch.randn(4, 4))
    before = b.detach().clone()
    opt = Muon([a, b], lr=0.1)
    a.grad = torch.randn(4, 4)
    opt.step()
    assert torch.equal(b.detach(), before) and b not in opt.state
    assert "momentum_buffer" in opt.state[a]


def test_closure_returns_loss():
    p = torch.nn.Parameter(torch.randn(4, 6))
    opt = Muon([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert math.isfinite(loss.item()) and copy.deepcopy(opt.state_dict())["state"]
