"""Config errors name the field and stop before any work (no output dir)."""

from __future__ import annotations

import pytest

from fastllm.data.config import ConfigError, PipelineConfig

from .conftest import run_cli


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["--dedup.treshold", "0.5"], "dedup.treshold"),
        (["--dedup.threshold", "1.5"], "dedup.threshold"),
        (["--dedup.threshold", "high"], "dedup.threshold"),
        (["--input.batch_size", "0"], "input.batch_size"),
        (["--filter.min_chars", "10", "--filter.max_chars", "5"], "filter.max_chars"),
        (["--run.engine", "spark"], "run.engine"),
        (["--dedup.near", "1"], "dedup.near"),
        (["--tokenz.path", "x"], "tokenz"),
        (["--filter.stages", "nocolon"], "filter.stages[0]"),
        (["--filter.c4.bogus", "1"], "filter.c4.bogus"),
        (["--filter.c4.min_num_sentences", "-2"], "filter.c4.min_num_sentences"),
        (["--filter.gopher_quality.min_doc_words", "many"], "filter.gopher_quality.min_doc_words"),
        (["--filter.gopher_repetition.top_n_grams", "[[0, 0.2]]"], "top_n_grams[0]"),
        (["--filter.fineweb.stop_chars", '[".!"]'], "filter.fineweb.stop_chars[0]"),
        (["--filter.fineweb.line_punct_thr", "-0.1"], "filter.fineweb.line_punct_thr"),
        (["--filter.langid.min_confidence", "2"], "filter.langid.min_confidence"),
        (["--filter.langid.languages", "[1]"], "filter.langid.languages[0]"),
        (["--filter.langid", "1"], "filter.langid"),
        (["--pii.name", "x"], "pii.name"),
        (["--dedup.mode", "cloud"], "dedup.mode"),
        (["--dedup.verify", "maybe"], "dedup.verify"),
    ],
)
def test_bad_value_names_the_field(corpus, tokenizer_path, tmp_path, capsys, overrides, field):
    out = tmp_path / "out"
    rc = run_cli("--input", corpus, "--output", out, "--tokenizer", tokenizer_path, *overrides)
    assert rc == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


def test_missing_paths_name_the_field(tmp_path, tokenizer_path, capsys):
    assert (
        run_cli(
            "--input",
            tmp_path / "nope.jsonl",
            "--output",
            tmp_path / "o",
            "--tokenizer",
            tokenizer_path,
        )
        == 2
    )
    assert "input.paths[0]" in capsys.readouterr().err
    assert run_cli("--input", tmp_path, "--output", tmp_path / "o") == 2
    assert "tokenizer.path" in capsys.readouterr().err
    assert run_cli("--input", tmp_path, "--tokenizer", tokenizer_path) == 2
    assert "output.dir" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_hook_that_is_not_a_stage(corpus, tokenizer_path, tmp_path, capsys):
    out = tmp_path / "out"
    for spec, msg in [
        ("tests.data.pipeline.hooks:not_a_stage", "not a Stage"),
        ("tests.data.pipeline.nomodule:f", "cannot load"),
    ]:
        assert (
            run_cli(
                "--input",
                corpus,
                "--output",
                out,
                "--tokenizer",
                tokenizer_path,
                "--filter.stages",
                spec,
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "filter.stages" in err and msg in err
        assert not out.exists()


def test_toml_file(tmp_path, corpus, tokenizer_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'[input]\npaths = ["{corpus}"]\n[output]\ndir = "{tmp_path / "o"}"\n'
        f'[tokenizer]\npath = "{tokenizer_path}"\n[dedup]\nthreshold = 0.7\nnum_perm = 64\n'
    )
    c = PipelineConfig.load(cfg, ["--filter.min_chars", "3"])
    assert c.dedup.threshold == 0.7 and c.dedup.num_perm == 64 and c.filter.min_chars == 3
    cfg.write_text(cfg.read_text() + "[dedup.extra]\n")
    with pytest.raises(ConfigError, match="dedup.extra"):
        PipelineConfig.load(cfg)
    with pytest.raises(ConfigError, match="no_such.toml"):
        PipelineConfig.load(tmp_path / "no_such.toml")


def test_shipped_configs_load(corpus, tokenizer_path, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "configs" / "pipeline"
    files = sorted(root.glob("*.toml"))
    assert files
    for f in files:
        PipelineConfig.load(
            f,
            [
                "--input.paths",
                str(corpus),
                "--output.dir",
                str(tmp_path),
                "--tokenizer.path",
                str(tokenizer_path),
            ],
        )
