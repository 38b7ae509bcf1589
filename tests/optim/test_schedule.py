"""Schedule shapes: warmup, cosine, linear, warmup-stable-decay."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastllm.optim import ScheduleConfig, WarmupCosine, WarmupLinear, WarmupStableDecay


def test_warmup_cosine_shape():
    f = WarmupCosine(total_steps=110, warmup_steps=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == 1.0
    assert f(10) == 1.0
    assert f(60) == pytest.approx(0.55)  # halfway down: (1 + 0.1) / 2
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_linear_shape():
    f = WarmupLinear(total_steps=100, warmup_steps=0, min_ratio=0.0)
    assert f(0) == 1.0 and f(25) == pytest.approx(0.75) and f(100) == 0.0 and f(200) == 0.0


def test_wsd_shape():
    f = WarmupStableDecay(total_steps=100, warmup_steps=5, decay_frac=0.2, min_ratio=0.0)
    assert f.decay_start == 80
    assert f(2) == pytest.approx(0.6)
    assert all(f(s) == 1.0 for s in range(5, 81))
    assert f(90) == pytest.approx(0.5) and f(100) == 0.0
    sq = WarmupStableDecay(total_steps=100, decay_frac=0.2, decay_shape="sqrt")
    assert sq(85) == pytest.approx(1 - math.sqrt(0.25))
    cos = WarmupStableDecay(total_steps=100, decay_frac=0.2, decay_shape="cosine", min_ratio=0.1)
    assert cos(90) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)


@given(
    total=st.integers(1, 2000),
    warm_frac=st.floats(0, 0.5),
    min_ratio=st.floats(0, 1),
    kind=st.sampled_from(["cosine", "linear", "wsd"]),
)
def test_every_schedule_warms_up_then_never_rises(total, warm_frac, min_ratio, kind):
    warmup = int(warm_frac * total)
    f = ScheduleConfig(name=kind, warmup_steps=warmup, min_ratio=min_ratio, decay_frac=0.3).factor(
        total
    )
    values = [f(s) for s in range(total + 3)]
    assert all(min(min_ratio, 1 / max(1, warmup)) - 1e-12 <= v <= 1.0 for v in values)
    assert all(a <= b for a, b in zip(values[:warmup], values[1 : warmup + 1], strict=True))
    after = values[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:], strict=False))
    assert values[-1] == pytest.approx(min_ratio)


def test_constant_and_pickle():
    f = ScheduleConfig(name="constant", warmup_steps=2).factor(10)
    assert [f(s) for s in range(4)] == [0.5, 1.0, 1.0, 1.0] and f(10) == 1.0
    g = WarmupStableDecay(total_steps=50, warmup_steps=3)
    assert pickle.loads(pickle.dumps(g)) == g


def test_errors_name_the_field():
    with pytest.raises(ValueError, match="schedule.warmup_steps"):
        WarmupCosine(total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="schedule.total_steps"):
        WarmupLinear(total_steps=0)
    with pytest.raises(ValueError, match="schedule.decay_shape"):
        WarmupStableDecay(total_steps=10, decay_shape="exp")
    with pytest.raises(ValueError, match="schedule.warmup_steps=9 overlaps"):
        WarmupStableDecay(total_steps=10, warmup_steps=9, decay_frac=0.5)
    with pytest.raises(ValueError, match="schedule.name"):
        ScheduleConfig(name="step")
    with pytest.raises(ValueError, match="schedule.warmup: unknown key"):
        ScheduleConfig.from_dict({"warmup": 3})
