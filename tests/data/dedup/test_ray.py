"""The Ray Data mode on a local Ray instance equals the single-machine mode."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from fastllm.data import dedup  # noqa: E402
from fastllm.data.config import DedupConfig  # noqa: E402
from fastllm.data.dedup import ray as dedup_ray  # noqa: E402
from tests.data.dedup.test_out_of_core import _corpus  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.mark.parametrize("verify", ["signature", "exact", "none"])
def test_ray_equals_single_machine(local_ray, verify):
    # With the texts on the driver (a list) every mode is available: the
    # same config gives the single machine's clusters.
    texts = _corpus(n_bases=80, seed=3)
    cfg = DedupConfig(num_perm=64, ngram=3, verify=verify)
    want = dedup.near_duplicate_clusters(texts, cfg)
    assert (want != np.arange(len(texts))).sum() > 10
    got = dedup_ray.near_duplicate_clusters(texts, cfg, batch_size=16)
    assert got.tolist() == want.tolist()


def test_ray_takes_a_dataset(local_ray):
    import pyarrow as pa

    texts = ["a b c d e f"] * 3 + ["x y z"]
    ds = ray.data.from_arrow(pa.table({"doc": np.arange(4), "body": texts}))
    signature = DedupConfig(verify="signature")
    got = dedup_ray.near_duplicate_clusters(ds, signature, text_column="body", id_column="doc")
    assert got.tolist() == [0, 0, 0, 3]
    with pytest.raises(ValueError, match="missing"):
        dedup_ray.near_duplicate_clusters(ds, signature)
    # A Dataset alone has no texts on the driver: exact verification needs texts= too.
    with pytest.raises(ValueError, match="exact"):
        dedup_ray.near_duplicate_clusters(ds, text_column="body", id_column="doc")
    got = dedup_ray.near_duplicate_clusters(ds, text_column="body", id_column="doc", texts=texts)
    assert got.tolist() == [0, 0, 0, 3]
