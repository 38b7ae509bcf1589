"""The owner assignment of sharded Muon: whole matrices to ranks, balanced by
Newton–Schulz work, the same on every rank (multi-process equality with
one-process Muon is in tests/parallel/test_modes.py)."""

from __future__ import annotations

import pytest
import torch

from fastllm.model import Decoder, ModelConfig
from fastllm.optim.sharded_muon import _batched, assign_owners, ns_flops


def _hidden_shapes(size: str) -> list[tuple[int, int]]:
    with torch.device("meta"):
        model = Decoder(ModelConfig.named(size))
    return [tuple(p.shape) for n, p in model.named_parameters() if p.ndim == 2 and "layers" in n]


@pytest.mark.parametrize("size", ["125M", "1B"])
@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_newton_schulz_work_is_balanced_over_owners(size, ranks):
    shapes = _hidden_shapes(size)
    owners = assign_owners(shapes, ranks)
    load = [0.0] * ranks
    for shape, owner in zip(shapes, owners, strict=True):
        load[owner] += ns_flops(shape)
    assert max(load) / (sum(load) / ranks) <= 1.2, load
    assert owners == assign_owners(list(shapes), ranks)  # a function of the shapes alone


def test_ns_flops_counts_the_wide_orientation():
    assert ns_flops((4, 8), steps=1) == 4 * 16 * 8 + 2 * 64
    assert ns_flops((8, 4)) == ns_flops((4, 8))
    assert assign_owners([(2, 2)], 4) == [0]  # fewer matrices than ranks: some own none


def test_batched_orthogonalization_keeps_each_matrix_its_shape():
    from fastllm.optim.muon import newton_schulz

    g = torch.Generator().manual_seed(0)
    mats = [torch.randn(3, 5, generator=g), torch.randn(5, 3, generator=g), torch.randn(4, 4, generator=g)]
    out = _batched(lambda X: newton_schulz(X, dtype=torch.float32), mats)
    for m, o in zip(mats, out, strict=True):
        assert o.shape == m.shape
        torch.testing.assert_close(o, newton_schulz(m, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_muon_on_fsdp_of_one_process_takes_the_owner_path(tmp_path):
    """FSDP2 on a process group of one: every Muon matrix is a Shard(0)
    DTensor, orthogonalized through the gather/scatter path, and training
    equals the plain one-process run."""
    from fastllm.parallel import teardown
    from fastllm.train import Trainer

    from ..train.helpers import config, data

    muon = {"optim": {"name": "muon", "lr": 1e-2, "muon_lr": 0.02}}
    plain = Trainer(config(tmp_path / "plain", **muon, train={"steps": 4}), *data(), log=lambda _: None)
    want = [r["loss"] for r in plain.fit()]
    try:
        sharded = Trainer(
            config(tmp_path / "fsdp", **muon, train={"steps": 4}, parallel={"fsdp_one_process": True}),
            *data(),
            log=lambda _: None,
        )
        got = [r["loss"] for r in sharded.fit()]
        weights = {k: v.full_tensor() for k, v in sharded.model.state_dict().items()}
    finally:
        teardown()
    assert got == pytest.approx(want, rel=1e-5)
    for k, v in plain.model.state_dict().items():
        assert float((weights[k] - v).norm() / v.norm()) < 1e-5, k
