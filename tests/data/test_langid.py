"""Language id on the multilingual part of the shared corpus, labels from
the document ids."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.data.langid import detect_languages, language_stage

LEIPZIG = {"deu": "de", "fra": "fr", "spa": "es", "ita": "it", "eng": "en"}
UDHR = {"deu": "de", "deu_1901": "de", "fra": "fr", "spa": "es", "ita": "it", "eng": "en"}


def expected(doc_id: str) -> str | None:
    if m := re.match(r"leipzig/([a-z]{3})_", doc_id):
        return LEIPZIG.get(m.group(1))
    if m := re.match(r"gutenberg-([a-z]{2})/", doc_id):
        return m.group(1)
    if m := re.match(r"udhr/(.+)$", doc_id):
        code = m.group(1)
        return "zh" if code.startswith("cmn") else UDHR.get(code)
    if doc_id.startswith(("inaugural/", "wikitext2-test/")):
        return "en"
    return None


@pytest.fixture(scope="module")
def labelled(shared_data):
    out = []
    for path in sorted((shared_data / "text").glob("*.jsonl.gz")):
        if path.name.startswith("code"):
            continue
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                want = expected(d["id"])
                if want is not None:
                    # the middle of the document: no headers, a few KB
                    mid = len(d["text"]) // 2
                    out.append((d["id"], want, d["text"][mid : mid + 4000]))
    return out


def test_accuracy_per_language(labelled):
    res = detect_languages([t for _, _, t in labelled])
    hits, total = defaultdict(int), defaultdict(int)
    misses = []
    for (doc_id, want, _), got in zip(labelled, res.codes, strict=True):
        total[want] += 1
        hits[want] += got == want
        if got != want:
            misses.append((doc_id, got))
    for lang in sorted(total):
        print(f"{lang}: {hits[lang]}/{total[lang]} = {hits[lang] / total[lang]:.3f}")
    print("misses:", misses[:20])
    assert set(total) >= {"de", "fr", "es", "it", "en", "zh"}
    for lang in total:
        assert hits[lang] / total[lang] >= 0.95, lang


def test_stage_adds_columns_and_counts():
    table = pa.table(
        {
            "text": [
                "The committee met on Tuesday to discuss the budget for the coming year.",
                "Der Ausschuss traf sich am Dienstag, um den Haushalt zu besprechen.",
                "12345 !!!",
                None,
            ]
        }
    )
    kept, counts = language_stage(table, languages={"en"})
    assert kept.column("lang").to_pylist() == ["en"]
    assert counts == {"lang_de": 1, "lang_unknown": 2}
    with pytest.raises(ValueError, match="min_confidence"):
        language_stage(table, min_confidence=2)
    with pytest.raises(ValueError, match="max_bytes"):
        detect_languages(["x"], max_bytes=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=5), st.integers(1, 50))
def test_any_text_any_cut(texts, max_bytes):
    res = detect_languages(texts, max_bytes=max_bytes)
    assert len(res.codes) == len(texts)
    assert all(0.0 <= c <= 1.0 for c in res.confidences)
