"""``[parallel]`` is checked at load, before any work, with messages naming
the field: degrees against the world size, tensor-parallel divisibility,
pipeline stages against layers and micro-batches, ZeRO stage choices."""

from __future__ import annotations

import pytest

from fastllm.config import ConfigError
from fastllm.parallel import ParallelConfig

from ..train.helpers import config


def _error(**sections) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config("/tmp/unused", **sections)
    return info.value


@pytest.mark.parametrize(
    ("sections", "field", "words"),
    [
        ({"parallel": {"tp": 3}}, "parallel.tp", "n_heads"),
        ({"parallel": {"tp": 4}, "model": {"n_kv_heads": 2}}, "parallel.tp", "kv heads"),
        ({"parallel": {"tp": 2}, "train": {"seq": 15}}, "train.seq", "sequence parallelism"),
        ({"parallel": {"pp": 3}}, "parallel.pp", "fewer layers than stages"),
        (
            {"parallel": {"pp": 2, "pp_schedule": "interleaved_1f1b", "pp_virtual": 2}},
            "parallel.pp",
            "pp × pp_virtual",
        ),
        ({"parallel": {"pp": 2, "pp_microbatches": 1}}, "parallel.pp_microbatches", "fewer"),
        ({"parallel": {"pp": 2}, "model": {"tie_embeddings": True}}, "model.tie_embeddings", ""),
        ({"parallel": {"zero": 4}}, "parallel.zero", "1, 2 or 3"),
        ({"parallel": {"zero": 1, "cpu_offload": True}}, "parallel.cpu_offload", "FSDP2"),
        ({"parallel": {"zero": 1}, "train": {"dtype": "fp16"}}, "train.dtype", "bf16"),
        ({"parallel": {"pp_schedule": "interleaved_1f1b"}}, "parallel.pp_virtual", ">= 2"),
        ({"parallel": {"pp_virtual": 2}}, "parallel.pp_virtual", "interleaved_1f1b"),
        ({"parallel": {"dp_shard": 0}}, "parallel.dp_shard", "-1"),
    ],
)
def test_bad_layouts_stop_at_load_naming_the_field(sections, field, words):
    err = _error(**sections)
    assert str(err).startswith(field), str(err)
    assert words in str(err)


def test_degrees_must_multiply_to_the_world_size():
    p = ParallelConfig.from_dict({"tp": 2, "pp": 2, "dp_shard": 2})
    assert p.degrees(8).world == 8
    with pytest.raises(ConfigError, match=r"^parallel: .*= 8, but the world size is 4"):
        p.degrees(4)
    rest = ParallelConfig.from_dict({"tp": 2})
    assert rest.degrees(8).dp_shard == 4
    with pytest.raises(ConfigError, match="not divisible"):
        rest.degrees(3)
