"""Helpers for the pipeline tests: a small trained tokenizer, a small mixed
corpus made in tmp_path, and the CLI run in-process or as a subprocess."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastllm.data.__main__ import main
from fastllm.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[3]

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
    "numbers of every kind river mountain garden window morning evening and to "
    "with that have be the of bright silver lantern harbor meadow orchard candle "
    "forest valley painter teacher library market bridge tower station winter"
).split()


def prose(seed: int, words: int) -> str:
    """Deterministic pseudo-text, different for each seed: sentences of nine
    words, which the default quality filters (Gopher, C4, FineWeb) keep from
    about 50 words on."""
    out, x = [], seed * 2654435761 % 2**32 + 1
    for k in range(words):
        x = (x * 1103515245 + 12345) % 2**31
        out.append(WORDS[(x >> 12) % len(WORDS)])  # high bits: the low ones cycle
        if k % 9 == 8 and k != words - 1:
            out[-1] += "."
    return " ".join(out) + "."


# Overrides that turn the quality filters off, for tests of other things on short texts.
NO_QUALITY = tuple(
    a
    for f in ("gopher_repetition", "gopher_quality", "c4", "fineweb")
    for a in (f"--filter.{f}.enabled", "false")
)


def page(title: str, body: str) -> str:
    paras = "".join(f"<p>{p.rstrip('.')}.</p>" for p in body.split(". "))
    return (
        f"<html lang='en'><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{paras}</article>"
        f"<footer>Copyright 2024, all rights reserved</footer></body></html>"
    )


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    Tokenizer.train([prose(i, 80) for i in range(50)], 320, show_progress=False).save(p)
    return p


def make_corpus(root: Path) -> Path:
    """JSONL, JSONL.gz, text and Parquet files and a directory of HTML pages,
    with one exact and one near duplicate and a few too-short documents."""
    d = root / "corpus"
    (d / "web").mkdir(parents=True)
    docs = [prose(i, 60 + i % 40) for i in range(40)]
    with open(d / "a.jsonl", "w") as f:
        for t in docs[:15]:
            f.write(json.dumps({"text": t}) + "\n")
        f.write(json.dumps({"text": "tiny"}) + "\n")
        dup = docs[3].replace(" ", "  ").replace(".", "!")
        f.write(json.dumps({"text": dup}) + "\n")  # exact dup (normalized)
    with gzip.open(d / "b.jsonl.gz", "wt") as f:
        for t in docs[15:25]:
            f.write(json.dumps({"text": t}) + "\n")
        near = docs[16].split()
        near[-3] = "zebra"
        f.write(json.dumps({"text": " ".join(near)}) + "\n")  # near dup
    (d / "c.txt").write_text(docs[25])
    pq.write_table(pa.table({"text": docs[26:32]}), d / "d.parquet", row_group_size=4)
    for i, t in enumerate(docs[32:40]):
        (d / "web" / f"{i:03d}.html").write_text(page(f"Page {i}", t))
    with gzip.open(d / "web" / "100.html.gz", "wt") as f:
        f.write(page("Zipped", prose(99, 70)))
    (d / "web" / "101.html").write_text("<html><body><nav>only a menu</nav></body></html>")
    return d


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path)


def run_cli(*args: str) -> int:
    return main(["run", *map(str, args), "--no-progress"])


KILL = Path(__file__).with_name("kill.py")


def run_subprocess(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a child process; ``kill_at="unit:2"`` SIGKILLs it at that
    point (see kill.py)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "python") + os.pathsep + e.get("PYTHONPATH", "")
    cmd = [str(KILL), kill_at] if kill_at else ["-m", "fastllm.data"]
    return subprocess.run(
        [sys.executable, *cmd, "run", *map(str, args), "--no-progress"],
        env=e,
        capture_output=True,
        text=True,
        timeout=600,
    )


def sha256_dir(d: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.iterdir())
        if p.is_file()
    }


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
