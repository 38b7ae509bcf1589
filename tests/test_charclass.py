"""``rust/src/filter/charclass.rs`` is what its generator writes."""

from __future__ import annotations

import importlib.util
import unicodedata

from .conftest import REPO

GEN = REPO / "rust" / "tools" / "gen_charclass.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_charclass", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_file_is_the_generators_output():
    gen = _generator()
    committed = gen.OUT.read_text(encoding="utf-8")
    assert committed == gen.render(), (
        f"{gen.OUT} differs from `python {GEN.relative_to(REPO)}` "
        f"(Unicode {unicodedata.unidata_version} here): rerun it and commit the result"
    )


def test_tables_are_sorted_disjoint_runs():
    # What `contains`'s binary search relies on.
    gen = _generator()
    for name, points in gen.tables().items():
        runs = gen.merged(points)
        assert all(a <= b for a, b in runs), name
        assert all(b + 1 < c for (_, b), (c, _) in zip(runs, runs[1:], strict=False)), name


def test_spot_checks():
    t = _generator().tables()
    # Latin by category; uncased scripts count as both cases.
    assert ord("ß") in t["ALPHA_LOWER"] and ord("ß") not in t["ALPHA_UPPER"]
    assert ord("Ÿ") in t["ALPHA_UPPER"]
    assert ord("ǅ") in t["ALPHA"] and ord("ǅ") not in t["ALPHA_LOWER"] | t["ALPHA_UPPER"]
    assert ord("中") in t["ALPHA_LOWER"] and ord("中") in t["ALPHA_UPPER"]
    assert ord("ђ") not in t["ALPHA"]  # Serbian letters are not in spaCy's classes
