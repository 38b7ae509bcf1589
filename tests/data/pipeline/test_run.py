"""End to end: a mixed corpus → shards that fastllm.shards reads and verify
passes; the report adds up; reruns skip; --force redoes; the run in one
process equals the run interrupted by kill -9 and resumed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastllm.data.__main__ import main
from fastllm.shards import ShardSet, read_manifest, verify
from fastllm.tokenizer import Tokenizer

from .conftest import make_corpus, prose, report, run_cli, run_subprocess, sha256_dir

QUALITY = ["gopher_repetition", "gopher_quality", "c4", "fineweb"]


def decoded(out, tokenizer_path) -> list[str]:
    tok = Tokenizer.from_file(tokenizer_path)
    s = ShardSet(out / "shards")
    eos = read_manifest(out / "shards")["eos_id"]
    docs = []
    for i in range(s.num_documents):
        ids = s.document(i)
        assert ids[-1] == eos
        docs.append(tok.decode(ids[:-1].tolist()))
    return docs


def test_end_to_end(corpus, tokenizer_path, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli(
            "--input",
            corpus,
            "--output",
            out,
            "--tokenizer",
            tokenizer_path,
            "--filter.min_chars",
            "20",
        )
        == 0
    )
    assert verify(out / "shards") == []
    assert main(["verify", str(out / "shards")]) == 0
    docs = decoded(out, tokenizer_path)
    texts = [prose(i, 60 + i % 40) for i in range(32)]
    # Every non-HTML document but the exact and the near duplicate, once.
    for t in texts:
        assert docs.count(t) == 1, t[:40]
    assert not any("!" in d for d in docs)  # the exact duplicate of texts[3]
    assert not any("zebra" in d for d in docs)
    assert "tiny" not in docs
    # HTML: main text without the navigation or footer; the menu-only page dropped.
    html = [d for d in docs if d not in texts]
    assert len(html) == 9
    assert all("Copyright" not in d and "About" not in d for d in html)
    assert any(prose(99, 70)[:30] in d for d in html)

    r = report(out)
    st = r["stages"]
    order = ["read", "extract", "length", *QUALITY, "pii", "signatures", "dedup"]
    order += ["tokenize", "shards"]
    assert list(st) == order
    for a, b in zip(order, order[1:], strict=False):
        assert st[a]["docs_out"] == st[b]["docs_in"], (a, b)
    for name, s in st.items():
        assert s["docs_in"] - s["docs_out"] == sum(s["dropped"].values()), name
    assert st["read"]["docs_in"] == 17 + 11 + 1 + 6 + 10
    assert st["extract"]["dropped"] == {"no_main_text": 1}
    assert st["length"]["dropped"] == {"too_short": 1}
    assert st["dedup"]["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1}
    m = read_manifest(out / "shards")
    assert r["totals"]["documents"] == m["documents"] == len(docs) == 41
    assert r["totals"]["tokens"] == m["tokens"]
    assert st["tokenize"]["bytes_out"] == 4 * (m["tokens"] - m["documents"])
    assert sum(v["documents"] for v in m["sources"].values()) == len(docs)
    assert set(m["sources"]) == {"web", "a", "b", "c", "d"}
    assert r["skipped_units"] == [] and r["errors"] == []


def test_rerun_skips_and_force_redoes(corpus, tokenizer_path, tmp_path, capsys):
    out = tmp_path / "out"
    args = ("--input", corpus, "--output", out, "--tokenizer", tokenizer_path)
    assert run_cli(*args) == 0
    first = sha256_dir(out / "shards")
    mtime = (out / "shards" / "manifest.json").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(*args) == 0
    assert "already finished" in capsys.readouterr().out
    assert (out / "shards" / "manifest.json").stat().st_mtime_ns == mtime
    # Shards gone but the units finished: phase 1 is skipped for all of them.
    (out / "report.json").unlink()
    assert run_cli(*args) == 0
    assert report(out)["resumed_units"] == report(out)["units"] == 5
    assert sha256_dir(out / "shards") == first
    assert run_cli(*args, "--force") == 0
    assert report(out)["resumed_units"] == 0
    assert sha256_dir(out / "shards") == first
    # Changed settings on a finished output: an error, not a silent mix.
    assert run_cli(*args, "--filter.min_chars", "5") == 2
    assert "--force" in capsys.readouterr().err


def test_changed_input_redoes_only_that_unit(corpus, tokenizer_path, tmp_path):
    out = tmp_path / "out"
    args = ("--input", corpus, "--output", out, "--tokenizer", tokenizer_path)
    assert run_cli(*args) == 0
    (corpus / "c.txt").write_text(prose(1000, 50))
    (out / "report.json").unlink()
    assert run_cli(*args) == 0
    assert report(out)["resumed_units"] == 4
    assert prose(1000, 50) in decoded(out, tokenizer_path)
    assert len(list((out / "work").glob("*.json"))) == 5  # the stale unit is gone


@pytest.mark.parametrize("kill_at", ["unit:2", "batch:6", "shard:2"])
def test_kill_9_then_rerun_is_byte_identical(tmp_path, tokenizer_path, kill_at):
    corpus = make_corpus(tmp_path)
    args = [
        "--input",
        corpus,
        "--tokenizer",
        tokenizer_path,
        "--input.batch_size",
        "4",
        "--output.max_shard_bytes",
        "600",
    ]
    ref = tmp_path / "ref"
    assert run_cli(*args, "--output", ref) == 0
    out = tmp_path / "out"
    p = run_subprocess(*args, "--output", out, kill_at=kill_at)
    assert p.returncode == -9, p.stderr
    assert not (out / "shards").exists()
    if kill_at.startswith("shard"):
        assert any((out / ".shards.tmp").iterdir())  # shards were half written
    if kill_at.startswith("batch"):
        assert list((out / "work").glob(".*.tmp"))  # a unit was half written
    p = run_subprocess(*args, "--output", out)
    assert p.returncode == 0, p.stderr
    resumed = {"unit:2": 2, "shard:2": 5}.get(kill_at)
    if resumed is not None:
        assert report(out)["resumed_units"] == resumed
    assert not list((out / "work").glob(".*"))
    assert verify(out / "shards") == []
    assert len(sha256_dir(ref / "shards")) > 3  # several shards
    assert sha256_dir(out / "shards") == sha256_dir(ref / "shards")
    assert not (out / ".shards.tmp").exists()


def test_train_tokenizer_in_the_run(corpus, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli(
            "--input",
            corpus,
            "--output",
            out,
            "--tokenizer.train_vocab_size",
            "300",
            "--tokenizer.train_sample_docs",
            "20",
        )
        == 0
    )
    tok = Tokenizer.from_file(out / "tokenizer.json")
    assert tok.vocab_size == 300
    assert verify(out / "shards") == []
    m = read_manifest(out / "shards")
    assert m["tokenizer"]["vocab_size"] == 300
    s = ShardSet(out / "shards")
    assert prose(0, 60) in [tok.decode(s.document(i)[:-1].tolist()) for i in range(s.num_documents)]


def test_no_dedup_keeps_duplicates(corpus, tokenizer_path, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli("--input", corpus, "--output", out, "--tokenizer", tokenizer_path, "--no-dedup")
        == 0
    )
    st = report(out)["stages"]
    assert st["dedup"]["dropped"] == {}
    assert any("zebra" in d for d in decoded(out, tokenizer_path))


def test_report_json_is_written_and_printed(corpus, tokenizer_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("--input", corpus, "--output", out, "--tokenizer", tokenizer_path) == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert "exact_duplicate 1" in printed and "tokens" in printed
    assert r["totals"]["mb_per_s"] > 0
    assert np.isclose(
        r["totals"]["mb_per_s_per_core"] * r["totals"]["cores"], r["totals"]["mb_per_s"]
    )


def test_shared_data(shared_data, tmp_path):
    """A few real pages and a real JSONL.gz file with the GPT-2 tokenizer."""
    import shutil

    web = tmp_path / "web"
    web.mkdir()
    for p in sorted((shared_data / "html-dev" / "html").iterdir())[:30]:
        shutil.copy(p, web / p.name)
    tok = shared_data / "tokenizers" / "gpt2" / "tokenizer.json"
    out = tmp_path / "out"
    assert (
        run_cli(
            "--input",
            web,
            "--input",
            shared_data / "text" / "code-00.jsonl.gz",
            "--output",
            out,
            "--tokenizer",
            tok,
            "--filter.min_chars",
            "200",
        )
        == 0
    )
    assert verify(out / "shards") == []
    r = report(out)
    m = read_manifest(out / "shards")
    assert m["dtype"] == "uint16" and m["tokenizer"]["vocab_size"] == 50257
    assert r["stages"]["read"]["docs_in"] > 30
    assert 20 <= m["sources"]["web"]["documents"] <= 30
    # Source code mostly fails the prose rules (Gopher's alphabetic-word ratio first).
    assert m["sources"].get("code-00", {"documents": 0})["documents"] <= 5
    assert r["stages"]["gopher_quality"]["dropped"]["gopher_below_alpha_threshold"] > 0
    docs = decoded(out, tok)
    assert all(len(d) >= 200 for d in docs)
