"""Documents for the filter parity test and bench: pieces of the shared text
corpus, cut at paragraph breaks into ~5–20 KB."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path


def _pieces(text: str, rng: random.Random) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    size, target = 0, rng.randint(5_000, 20_000)
    for para in text.split("\n\n"):
        cur.append(para)
        size += len(para.encode()) + 2
        if size >= target:
            out.append("\n\n".join(cur))
            cur, size, target = [], 0, rng.randint(5_000, 20_000)
    if cur:
        out.append("\n\n".join(cur))
    return out


def load_pieces(
    text_dir: Path, max_docs_per_file: int = 40, seed: int = 0
) -> list[tuple[str, str]]:
    """(id, text) pieces: up to `max_docs_per_file` documents from each shard
    (a seeded sample), each cut into ~5–20 KB pieces."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for path in sorted(text_dir.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        rng.shuffle(docs)
        for d in docs[:max_docs_per_file]:
            for k, piece in enumerate(_pieces(d["text"], rng)):
                out.append((f"{d['id']}@{k}", piece))
    return out


def load_html_dev(html_dev: Path) -> list[tuple[str, str]]:
    """(id, text) of the html-dev pages as fastllm's extractor gives them
    (web text: short lines, menus that survived, lists)."""
    from fastllm.data import extract_batch

    gt = json.loads((html_dev / "ground-truth.json").read_text())
    ids = sorted(gt)
    pages = [gzip.decompress((html_dev / "html" / f"{i}.html.gz").read_bytes()) for i in ids]
    texts = extract_batch(pages, urls=[gt[i]["url"] for i in ids]).texts
    return [(f"html-dev/{i}", t) for i, t in zip(ids, texts, strict=True) if t]
