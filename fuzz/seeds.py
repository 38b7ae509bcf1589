"""Writes starting corpora for the fuzz targets into fuzz/corpus/<target>/
(plus every input under fuzz/regressions/<target>/ that once crashed it):
small WARC/WET files (plain, gzip per record, one gzip member) built with
the tests' writer, and HTML pages (the html-dev set when ../shared/data is
there, cut to 64 KB; a few hand-written pages otherwise)."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.data.warc_files import (  # noqa: E402
    Page,
    conversion,
    join,
    warc_records,
    warcinfo,
)

PAGES = [
    "<html><head><title>T</title></head><body><article><p>Some prose here.</p></article></body></html>",
    "<!doctype html><meta charset=latin-1><title>x</title><div><p>caf\xe9 and more words</p></div>",
    "<html><body><nav><a href=/>Home</a></nav><main><h1>Head</h1><p>One. Two. Three.</p>"
    "<ul><li>a</li><li>b</li></ul><table><tr><td>1</td></tr></table></main></body></html>",
    "<p>unclosed <b>bold <i>both</b> text</i><script>var s='<p>no</p>'</script><style>p{}</style>",
]


def main() -> None:
    warc_dir = HERE / "corpus" / "warc"
    html_dir = HERE / "corpus" / "extract"
    warc_dir.mkdir(parents=True, exist_ok=True)
    html_dir.mkdir(parents=True, exist_ok=True)
    pages = [
        Page(f"http://s{i}.example/", p.encode("latin-1"), ct)
        for i, (p, ct) in enumerate(
            zip(
                PAGES,
                ["text/html", "text/html; charset=iso-8859-1", "image/png", "text/html"],
                strict=True,
            )
        )
    ]
    recs = warc_records(pages)
    wet = [warcinfo()] + [conversion(i, f"http://t{i}/", f"text {i} é") for i in range(3)]
    seeds = {
        "plain.warc": join(recs, False),
        "members.warc.gz": join(recs, True),
        "one-member.warc.gz": gzip.compress(join(recs, False)),
        "plain.wet": join(wet, False),
        "members.wet.gz": join(wet, True),
        "one-record.warc": recs[2],
    }
    for name, data in seeds.items():
        (warc_dir / name).write_bytes(data)
    # Inputs that once crashed a target stay in its corpus.
    for target in ("warc", "extract"):
        for f in sorted((HERE / "regressions" / target).glob("*")):
            (HERE / "corpus" / target / f.name).write_bytes(f.read_bytes())
    for i, p in enumerate(PAGES):
        (html_dir / f"page{i}.html").write_bytes(p.encode("latin-1"))
        (html_dir / f"url{i}.html").write_bytes(f"http://Host{i}.De/x\n{p}".encode("latin-1"))
    env = os.environ.get("FASTLLM_SHARED_DATA")
    dev = (Path(env) if env else REPO.parent / "shared" / "data") / "html-dev" / "html"
    if dev.is_dir():
        for f in sorted(dev.glob("*.html.gz"))[:40]:
            (html_dir / f.name.replace(".gz", "")).write_bytes(
                gzip.decompress(f.read_bytes())[:16384]
            )
    print(f"seeds: {len(list(warc_dir.iterdir()))} warc, {len(list(html_dir.iterdir()))} html")


if __name__ == "__main__":
    main()
