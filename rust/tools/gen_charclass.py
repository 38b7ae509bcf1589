"""Generates ``rust/src/filter/charclass.rs``: spaCy's letter classes
(``spacy/lang/char_classes.py``, spaCy 3.8: ``ALPHA``, ``ALPHA_LOWER``,
``ALPHA_UPPER``) as sorted, merged code-point ranges.

spaCy writes those classes as regex character sets built from pieces: whole
Unicode blocks for scripts without case (Arabic, Hebrew, Devanagari, CJK,
...), which count as lower *and* upper case; the letters of a few alphabets
(Russian, Ukrainian, Macedonian, Tatar, Greek); and Latin blocks split by hand into
their lower- and upper-case letters. Here each piece is stated as what it
is — a block range with a rule, or an alphabet — and the Latin split is
taken from the Unicode general category (``Lu`` upper, ``Ll`` lower; ``Lt``,
``Lm``, ``Lo`` and unassigned points in neither), which is what spaCy's
hand-written lists hold.

The general categories come from Python's ``unicodedata``. Every point the
tables split by category has had the same category since Unicode 11.0 (the
last of them, U+A7AF and U+A7B8..U+A7B9, were added in 11.0), so any Python
from 3.8 on gives the same file; the script refuses an older database and
``--check`` names the version it ran with.

    python rust/tools/gen_charclass.py            # rewrite the file
    python rust/tools/gen_charclass.py --check    # exit 1 if it differs
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "filter" / "charclass.rs"

# The oldest Unicode whose categories give the committed tables (see above).
MIN_UNICODE = (11, 0, 0)

Ranges = list[tuple[int, int]]

# Latin, as spaCy groups it: (ranges, rule). "cased": Lu are upper, Ll lower,
# the rest only alphabetic; "lower": the whole range is lower case (phonetic
# letters, Latin Extended-E), none of it upper.
LATIN: list[tuple[str, Ranges, str]] = [
    ("basic", [(0x41, 0x5A), (0x61, 0x7A)], "cased"),
    ("fullwidth", [(0xFF21, 0xFF3A), (0xFF41, 0xFF5A)], "cased"),
    ("Latin-1 Supplement", [(0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0xFF)], "cased"),
    ("Extended-A", [(0x100, 0x17F)], "cased"),
    ("Extended-B", [(0x180, 0x1BF), (0x1C4, 0x24F)], "cased"),
    ("Extended-C", [(0x2C60, 0x2C7B), (0x2C7E, 0x2C7F)], "cased"),
    (
        "Extended-D",
        [(0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E), (0xA790, 0xA7B9), (0xA7FA, 0xA7FA)],
        "cased",
    ),
    ("Extended-E", [(0xAB30, 0xAB5A), (0xAB60, 0xAB64)], "lower"),
    ("phonetic", [(0x250, 0x2AF), (0x1D00, 0x1D25), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A)], "lower"),
    ("Extended Additional", [(0x1E00, 0x1EFF)], "cased"),
]

# Alphabets: (lower-case letters, upper-case letters); "a-b" is a run.
ALPHABETS: list[tuple[str, str, str]] = [
    ("Russian", "ёа-я", "ЁА-Я"),
    ("Tatar", "әөүҗңһ", "ӘӨҮҖҢҺ"),
    ("Greek", "α-ωάέίόώήύ", "Α-ΩΆΈΊΌΏΉΎ"),
    ("Ukrainian", "а-щюяіїєґ", "А-ЩЮЯІЇЄҐ"),
    ("Macedonian", "ѓѕјљњќѐѝ", "ЃЅЈЉЊЌЀЍ"),
]

# Scripts without case: whole ranges, in all three tables.
UNCASED: list[tuple[str, Ranges]] = [
    ("Bengali", [(0x980, 0x9FF)]),
    ("Hebrew", [(0x591, 0x5F4), (0xFB1D, 0xFB4F)]),
    (
        "Arabic/Persian",
        [
            (0x620, 0x64A),
            (0x66E, 0x6D5),
            (0x6E5, 0x6FF),
            (0x750, 0x77F),
            (0x8A0, 0x8BD),
            (0xFB50, 0xFBB1),
            (0xFBD3, 0xFD3D),
            (0xFD50, 0xFDC7),
            (0xFDF0, 0xFDFB),
            (0xFE70, 0xFEFC),
            (0x1EE00, 0x1EEBB),
        ],
    ),
    ("Sinhala", [(0xD80, 0xDFF)]),
    ("Devanagari", [(0x900, 0x97F)]),
    ("Kannada", [(0xC80, 0xCFF)]),
    ("Tamil", [(0xB80, 0xBFF)]),
    ("Telugu", [(0xC00, 0xC7F)]),
    ("Ethiopic", [(0x1200, 0x137F)]),
    ("Hangul", [(0xAC00, 0xD7AF), (0x1100, 0x11FF)]),
    ("Hiragana, Katakana", [(0x3040, 0x30FF)]),
    (
        "CJK",
        [
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2EBEF),
            (0x2E80, 0x2FDF),
            (0x2FF0, 0x303F),
            (0x31C0, 0x31EF),
            (0x3200, 0x33FF),
            (0xF900, 0xFAFF),
            (0xFE30, 0xFE4F),
            (0x1F200, 0x1F2FF),
            (0x2F800, 0x2FA1F),
        ],
    ),
]

HEADER = """\
//! spaCy's character classes (`spacy/lang/char_classes.py`, spaCy 3.8, MIT)
//! as code-point ranges, generated from its regexes: which letters count
//! as lower/upper case or alphabetic for the tokenizer's affix rules.
"""

CONTAINS = """\
/// Whether `c` lies in one of `table`'s ranges.
pub fn contains(table: &[(u32, u32)], c: char) -> bool {
    let u = c as u32;
    table
        .binary_search_by(|&(a, b)| {
            if b < u {
                std::cmp::Ordering::Less
            } else if a > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}
"""


def _points(ranges: Ranges) -> set[int]:
    return {c for a, b in ranges for c in range(a, b + 1)}


def _letters(spec: str) -> set[int]:
    """The code points of an alphabet spec: letters, and ``x-y`` runs."""
    out: set[int] = set()
    k = 0
    while k < len(spec):
        if k + 2 < len(spec) and spec[k + 1] == "-":
            out |= set(range(ord(spec[k]), ord(spec[k + 2]) + 1))
            k += 3
        else:
            out.add(ord(spec[k]))
            k += 1
    return out


def tables() -> dict[str, set[int]]:
    """ALPHA_LOWER, ALPHA_UPPER and ALPHA as sets of code points."""
    lower: set[int] = set()
    upper: set[int] = set()
    alpha: set[int] = set()
    for _, ranges, rule in LATIN:
        points = _points(ranges)
        alpha |= points
        if rule == "lower":
            lower |= points
            continue
        for c in points:
            cat = unicodedata.category(chr(c))
            if cat == "Lu":
                upper.add(c)
            elif cat == "Ll":
                lower.add(c)
    for _, lo, up in ALPHABETS:
        lower |= _letters(lo)
        upper |= _letters(up)
        alpha |= _letters(lo) | _letters(up)
    for _, ranges in UNCASED:
        points = _points(ranges)
        lower |= points
        upper |= points
        alpha |= points
    return {"ALPHA_LOWER": lower, "ALPHA_UPPER": upper, "ALPHA": alpha}


def merged(points: set[int]) -> Ranges:
    """Sorted, maximal runs of consecutive code points."""
    out: list[list[int]] = []
    for c in sorted(points):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [(a, b) for a, b in out]


def render() -> str:
    """The text of charclass.rs."""
    version = tuple(int(x) for x in unicodedata.unidata_version.split("."))
    if version < MIN_UNICODE:
        raise SystemExit(
            f"gen_charclass: Python's Unicode database is {unicodedata.unidata_version}; "
            f"the tables need {'.'.join(map(str, MIN_UNICODE))} or later"
        )
    parts = [HEADER]
    for name, points in tables().items():
        rows = "".join(f"    ({a:#x}, {b:#x}),\n" for a, b in merged(points))
        parts.append(f"pub const {name}: &[(u32, u32)] = &[\n{rows}];\n")
    parts.append(CONTAINS)
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the file, write nothing")
    args = ap.parse_args()
    text = render()
    if args.check:
        same = OUT.read_text(encoding="utf-8") == text
        print(
            f"{OUT.name}: {'up to date' if same else 'differs from the generator'} "
            f"(Unicode {unicodedata.unidata_version})"
        )
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
