"""The quality filters, language id and PII masking as configured pipeline
stages: each drop reason lands in report.json, a disabled family or rule
drops nothing, and the defaults run in datatrove's FineWeb order."""

from __future__ import annotations

import json

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from fastllm.data.config import PipelineConfig
from fastllm.shards import ShardSet
from fastllm.tokenizer import Tokenizer

from .conftest import prose, report, run_cli

FRENCH = (
    "Le chat dort sur le canapé pendant que la pluie tombe doucement sur la ville. "
    "Les enfants jouent dans le jardin avec leurs amis et leurs parents les regardent. "
    "Demain, nous irons au marché acheter des pommes, du pain frais et un peu de fromage. "
    "Le musée ouvre ses portes à neuf heures et ferme tard le jeudi soir pour les visiteurs. "
    "Mon grand-père racontait souvent des histoires de son enfance passée à la campagne."
)


def corpus(tmp_path):
    docs = {
        "good": prose(1, 70),
        "lorem": prose(2, 70) + " Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "short": "A short note, under fifty words.",
        "repeated": "\n".join(["the same line of text with the words in it."] * 12),
        "email": prose(3, 70) + " Write to jane.doe@example.com with the details.",
        "french": FRENCH,
    }
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()))
    return p


def run(tmp_path, tokenizer_path, *extra, name="out"):
    out = tmp_path / name
    args = ["--input", corpus(tmp_path), "--output", out, "--tokenizer", tokenizer_path]
    assert run_cli(*args, "--no-dedup", *extra) == 0
    tok = Tokenizer.from_file(tokenizer_path)
    s = ShardSet(out / "shards")
    docs = [tok.decode(s.document(i)[:-1].tolist()) for i in range(s.num_documents)]
    return report(out), docs


def test_drop_reasons_in_the_report(tmp_path, tokenizer_path):
    r, docs = run(tmp_path, tokenizer_path)
    st = r["stages"]
    names = list(st)
    assert names.index("gopher_repetition") < names.index("gopher_quality")
    assert names.index("gopher_quality") < names.index("c4") < names.index("fineweb")
    assert names.index("fineweb") < names.index("pii") < names.index("signatures")
    assert "langid" not in st  # off until filter.langid.languages is set
    # datatrove's reason strings, per family; the first failing rule counts.
    assert st["gopher_repetition"]["dropped"] == {"dup_line_frac": 1, "top_2_gram": 1}
    assert st["gopher_quality"]["dropped"] == {"gopher_enough_stop_words": 1}  # French
    assert st["c4"]["dropped"] == {"lorem_ipsum": 1}
    assert r["totals"]["documents"] == len(docs) == 2
    for s in st.values():
        assert s["docs_in"] - s["docs_out"] == sum(s["dropped"].values())
    # PII masked in what is kept.
    assert any("<EMAIL>" in d for d in docs)
    assert not any("jane.doe" in d for d in docs)
    assert prose(1, 70) in docs


def test_disabled_family_or_rule_drops_nothing(tmp_path, tokenizer_path):
    r, docs = run(tmp_path, tokenizer_path, "--filter.c4.enabled", "false", name="a")
    assert "c4" not in r["stages"]
    assert any("Lorem ipsum" in d for d in docs)
    r, docs = run(tmp_path, tokenizer_path, "--filter.c4.filter_lorem_ipsum", "false", name="b")
    assert r["stages"]["c4"]["dropped"] == {}
    assert any("Lorem ipsum" in d for d in docs)
    r, docs = run(tmp_path, tokenizer_path, "--pii.enabled", "false", "--no-filter", name="c")
    assert "pii" not in r["stages"] and "gopher_quality" not in r["stages"]
    assert len(docs) == 6 and any("jane.doe@example.com" in d for d in docs)
    # A placeholder set to "" leaves that kind unmasked.
    r, docs = run(tmp_path, tokenizer_path, "--pii.email", '""', name="d")
    assert any("jane.doe@example.com" in d for d in docs)


def test_langid(tmp_path, tokenizer_path):
    r, docs = run(
        tmp_path,
        tokenizer_path,
        "--filter.langid.languages",
        '["en"]',
        "--no-filter",  # the whole filter section off: langid too
        name="a",
    )
    assert "langid" not in r["stages"]
    r, docs = run(
        tmp_path,
        tokenizer_path,
        "--filter.langid.languages",
        '["en"]',
        *[a for f in ("gopher_repetition", "gopher_quality", "c4", "fineweb")
          for a in (f"--filter.{f}.enabled", "false")],
        name="b",
    )  # fmt: skip
    st = r["stages"]["langid"]
    assert st["dropped"].get("lang_fr") == 1, st
    assert not any("Le chat" in d for d in docs)
    assert list(r["stages"])[list(r["stages"]).index("langid") + 1] == "pii"


def test_toml_sections(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        "[filter.gopher_repetition]\ntop_n_grams = [[2, 0.25]]\ndup_line_frac = 0\n"
        "[filter.gopher_quality]\nstop_words = ['the', 'and']\nmin_doc_words = 20\n"
        "[filter.c4]\nenabled = false\n"
        "[filter.fineweb]\nstop_chars = ['.', '!']\n"
        "[filter.langid]\nlanguages = ['en', 'de']\nmin_confidence = 0.5\n"
        "[pii]\nphone = ''\n[dedup]\nmode = 'disk'\n"
    )
    c = PipelineConfig.from_dict(tomllib.loads(cfg.read_text()))
    f = c.filter
    assert f.gopher_repetition.top_n_grams == ((2, 0.25),)
    assert f.gopher_repetition.dup_line_frac == 0.0
    assert f.gopher_quality.stop_words == ("the", "and") and f.gopher_quality.min_doc_words == 20
    assert not f.c4.enabled and f.fineweb.stop_chars == (".", "!")
    assert f.langid.languages == ["en", "de"] and f.langid.min_confidence == 0.5
    assert c.pii.phone == "" and c.pii.email == "<EMAIL>" and c.dedup.mode == "disk"
