"""Byte compatibility with Megatron-LM's indexed dataset.

megatron-core imports on CPU here, so these tests use its real
``IndexedDataset`` (reading our shards) and ``IndexedDatasetBuilder``
(writing the same documents, which must give identical bytes). Without
megatron-core they skip; ``fastllm.shards.Shard``, an independent numpy
reader written from the format description in megatron-core's
``indexed_dataset.py``, is tested in every run (test_writer, test_reader).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastllm.shards import Shard

from .conftest import random_docs, write

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # no Transformer Engine / Apex on CPU
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
torch = pytest.importorskip("torch")

# megatron-core's builder calls numpy.array(tensor, copy=False) paths numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("vocab", [1000, 100_000])
def test_megatron_reads_our_shards(tmp_path, vocab):
    docs = random_docs(3, 200, vocab)
    m = write(tmp_path, docs, vocab=vocab, eos_id=0, max_shard_bytes=3000)
    i = 0
    for s in m["shards"]:
        ds = indexed.IndexedDataset(str(tmp_path / s["name"]))
        assert ds.index.dtype == (np.uint16 if vocab < 65500 else np.int32)
        assert len(ds) == s["documents"]
        np.testing.assert_array_equal(ds.document_indices, np.arange(len(ds) + 1))
        for j in range(len(ds)):
            np.testing.assert_array_equal(ds[j], np.append(docs[i], 0))
            i += 1
    assert i == len(docs)


@pytest.mark.parametrize("vocab", [1000, 100_000])
def test_same_bytes_as_megatron_builder(tmp_path, vocab):
    docs = random_docs(4, 50, vocab)
    write(tmp_path / "ours", docs, vocab=vocab, eos_id=0)
    prefix = str(tmp_path / "theirs")
    # preprocess_data.py's choice of dtype, with --append-eod.
    b = indexed.IndexedDatasetBuilder(prefix + ".bin", dtype=indexed.DType.optimal_dtype(vocab))
    for d in docs:
        b.add_document(torch.from_numpy(np.append(d, 0).astype(np.int64)), [len(d) + 1])
    b.finalize(prefix + ".idx")
    for ext in (".bin", ".idx"):
        ours = (tmp_path / "ours" / ("shard_00000" + ext)).read_bytes()
        theirs = (tmp_path / ("theirs" + ext)).read_bytes()
        assert ours == theirs, ext
    # And our reader reads theirs.
    sh = Shard(prefix)
    for j, d in enumerate(docs):
        np.testing.assert_array_equal(sh[j][:-1], d)
