"""Duplicate removal: exact content hashes and MinHash/LSH near duplicates.

Three ways to run it, one set of kernels and one :class:`~fastllm.data.config.DedupConfig`
(``DedupConfig.build()``: :class:`DedupStage`, exact and near duplicates
dropped from one table):

- :mod:`~fastllm.data.dedup.memory`: every signature in memory (the functions below);
- :mod:`~fastllm.data.dedup.disk`: out of core over input shards, resumable;
- :mod:`~fastllm.data.dedup.ray`: LSH band keys shuffled by Ray Data.
"""

from fastllm.data.dedup.memory import (
    VERIFIED_WEIGHTS,
    DedupReport,
    DedupStage,
    clusters_from_edges,
    clusters_from_signatures,
    content_hashes,
    dedup_stage,
    exact_duplicates,
    first_occurrences,
    lsh_params,
    lsh_plan,
    minhash,
    near_duplicate_clusters,
    near_duplicate_pairs,
    report_from_labels,
    shingle_jaccard,
)

__all__ = [
    "VERIFIED_WEIGHTS",
    "DedupReport",
    "DedupStage",
    "clusters_from_edges",
    "clusters_from_signatures",
    "content_hashes",
    "dedup_stage",
    "exact_duplicates",
    "first_occurrences",
    "lsh_params",
    "lsh_plan",
    "minhash",
    "near_duplicate_clusters",
    "near_duplicate_pairs",
    "report_from_labels",
    "shingle_jaccard",
]
