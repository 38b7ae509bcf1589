"""The pipeline stage: kept rows and the report."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fastllm.data import dedup


def test_stage_drops_near_duplicates_and_reports():
    base = " ".join(f"word{i}" for i in range(100))
    near = base.replace("word50", "changed")
    table = pa.table(
        {
            "id": [10, 11, 12, 13, 14],
            "text": [base, "something else entirely here", near, base, None],
        }
    )
    kept, report = dedup.dedup_stage(table)
    assert kept.column("id").to_pylist() == [10, 11, 14]
    assert report == dedup.DedupReport(documents_in=5, clusters=1, removed=2, kept=3)
    assert report.as_dict() == {"documents_in": 5, "clusters": 1, "removed": 2, "kept": 3}


def test_stage_checks_its_column():
    with pytest.raises(ValueError, match="text_column 'body'"):
        dedup.dedup_stage(pa.table({"text": ["a"]}), text_column="body")
    with pytest.raises(ValueError, match="string column"):
        dedup.dedup_stage(pa.table({"text": [1, 2]}))


def test_report_counts_clusters_of_two_or_more():
    r = dedup.report_from_labels([0, 0, 2, 3, 3, 3, 6])
    assert r == dedup.DedupReport(documents_in=7, clusters=2, removed=3, kept=4)
