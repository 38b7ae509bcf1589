"""`python -m fastllm.data run` on Common Crawl-style WARC and WET files."""

from __future__ import annotations

import gzip

from fastllm.shards import read_manifest, verify
from tests.io.warc_files import html_dev_pages, html_dev_texts, join, warc_records, wet_records

from .conftest import report, run_cli


def test_warc_and_wet_inputs(shared_data, tmp_path):
    root = shared_data / "html-dev"
    cc = tmp_path / "cc"
    cc.mkdir()
    pages = html_dev_pages(root, limit=40)
    (cc / "CC-MAIN-a.warc.gz").write_bytes(join(warc_records(pages), gzip_per_record=True))
    texts = html_dev_texts(root, limit=20)
    wet = join(wet_records(texts), gzip_per_record=True)
    # The last member cut short, as an interrupted download leaves it.
    last = len(gzip.compress(wet_records(texts)[-1]))
    (cc / "CC-MAIN-b.warc.wet.gz").write_bytes(wet[: len(wet) - last // 2])
    out = tmp_path / "out"
    tok = shared_data / "tokenizers" / "gpt2" / "tokenizer.json"
    args = ["--input", cc, "--output", out, "--tokenizer", tok, "--filter.min_chars", "100"]
    assert run_cli(*args) == 0
    assert verify(out / "shards") == []
    r = report(out)
    read = r["stages"]["read"]
    non_html = len(pages) - 40
    assert read["docs_in"] == len(pages) + len(texts)
    assert read["docs_out"] == 40 + len(texts) - 1
    assert read["dropped"] == {"non_html": non_html, "truncated_gzip": 1}
    assert read["flagged"]["warc_request"] == len(pages)
    assert read["flagged"]["gzip_errors"] == 1
    assert r["skipped_units"] == []
    assert any("truncated_gzip" in e for e in r["errors"])
    m = read_manifest(out / "shards")
    assert set(m["sources"]) == {"CC-MAIN-a", "CC-MAIN-b"}
    # Extraction and the default filters keep most pages.
    assert 20 <= m["sources"]["CC-MAIN-a"]["documents"] <= 40
    # A rerun finds every unit finished.
    assert run_cli(*args) == 0
