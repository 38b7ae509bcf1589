"""fastllm.data.extract_text / extract_batch: behaviour, robustness, quality."""

from __future__ import annotations

import gzip
import json
import re
import statistics
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
from fastllm.data import extract_batch, extract_text

PARAS = [
    "The committee met on Tuesday to discuss the budget, which had grown by a third since last year.",
    "Members argued about the schedule, the staffing and the cost, but in the end they voted in favour.",
    "The plan now goes to the council, which will decide in March whether to approve it or send it back.",
]

PAGE = f"""<!doctype html><html lang="en"><head><title>Budget approved | The Paper</title>
<meta charset="utf-8"><style>p {{ color: red }}</style><script>var tracking = "<p>no</p>";</script></head>
<body>
<div class="cookie-consent">We use cookies. <button>Accept all</button> <a href="/privacy">Privacy policy</a></div>
<header class="site-header"><a href="/">The Paper</a><nav><a href="/news">News</a> <a href="/sport">Sport</a></nav></header>
<main><article>
<h1>Budget approved</h1>
<p>{PARAS[0]}</p><p>{PARAS[1]}
<p>{PARAS[2]}</p>
<h2>What happens next</h2>
<ul><li>Council vote in March</li><li>Building work from June</li></ul>
<div class="social-share"><a href="/s/t">Share on X</a> <a href="/s/f">Share on Facebook</a></div>
</article></main>
<aside class="sidebar"><h3>Most read</h3><ul><li><a href="/1">Another story</a></li></ul></aside>
<footer>© 2026 The Paper · <a href="/terms">Terms</a></footer>
</body></html>"""


def test_main_text_without_chrome():
    text = extract_text(PAGE)
    assert text is not None
    for p in PARAS:
        assert p in text
    assert f"{PARAS[0]}\n\n{PARAS[1]}" in text  # paragraphs: blank line between
    assert "What happens next" in text
    assert "- Council vote in March\n- Building work from June" in text
    for chrome in [
        "cookies",
        "Accept all",
        "News",
        "Sport",
        "Share on",
        "Most read",
        "Terms",
        "tracking",
        "color",
    ]:
        assert chrome not in text, chrome


def test_bytes_and_str_agree_and_titles_come_back():
    assert extract_text(PAGE.encode()) == extract_text(PAGE)
    assert extract_text(bytearray(PAGE.encode())) == extract_text(PAGE)
    out = extract_batch([PAGE, PAGE.encode(), b"", "<p>   </p>"])
    assert out.texts[0] == out.texts[1] == extract_text(PAGE)
    assert out.texts[2] is None and out.texts[3] is None
    assert out.titles[:3] == ["Budget approved | The Paper", "Budget approved | The Paper", None]
    assert out.langs[0] == "en"


def test_batch_over_arrow_and_threads():
    pages = [PAGE.replace("Tuesday", f"day {i}") for i in range(50)]
    one = extract_batch(pages)
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(2)
        two = extract_batch(pages, urls=[f"https://example.com/{i}" for i in range(50)])
    finally:
        fastllm.set_num_threads(before)
    assert one == two  # deterministic whatever the thread count
    arr = pa.array([p.encode() for p in pages[:3]] + [None], pa.binary())
    out = extract_batch(arr)
    assert isinstance(out.texts, pa.Array)
    assert out.texts.to_pylist()[:3] == one.texts[:3]
    assert out.texts.to_pylist()[3] is None
    assert extract_batch(pa.chunked_array([pa.array(pages[:2])])).texts.to_pylist() == one.texts[:2]


@pytest.mark.parametrize(
    "typ", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.string_view()]
)
def test_arrow_types_offsets_and_nulls(typ):
    pages = [PAGE.replace("Tuesday", f"day {i}") for i in range(6)]
    want = extract_batch(pages).texts
    raw = [
        p
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or typ == pa.string_view()
        else p.encode()
        for p in pages
    ]
    arr = pa.array(raw[:3] + [None] + raw[4:], typ)
    sliced = arr.slice(2, 3)  # a non-zero offset into the buffers
    got = extract_batch(
        sliced, urls=["https://a.example/", None, "https://b.example/"]
    ).texts.to_pylist()
    assert got == [want[2], None, want[4]]
    chunked = pa.chunked_array([arr.slice(0, 2), arr.slice(2, 4)])
    assert extract_batch(chunked).texts.to_pylist() == want[:3] + [None] + want[4:]


def test_urls_as_arrow_equal_urls_as_a_list():
    # The pipeline passes a WARC table's url column as it is (no to_pylist).
    legacy = "<p>Olá, a polícia chegou à cidade e a população aplaudiu.</p>".encode("latin-1")
    pages = pa.array([legacy, legacy, PAGE.encode()], pa.binary())
    urls = ["https://example.br/", None, "https://example.com/"]
    want = extract_batch(pages, urls=urls).texts.to_pylist()
    for col in (pa.array(urls), pa.chunked_array([urls[:1], urls[1:]], pa.large_string())):
        assert extract_batch(pages, urls=col).texts.to_pylist() == want
    # List pages take Arrow urls too.
    assert extract_batch([legacy], urls=pa.array(urls[:1])).texts == want[:1]
    with pytest.raises(ValueError, match="1 urls for 3 pages"):
        extract_batch(pages, urls=pa.array(["x"]))


def test_arrow_of_wrong_type_is_a_clear_error():
    with pytest.raises(TypeError, match="string or binary"):
        extract_batch(pa.array([1, 2, 3]))
    with pytest.raises(ValueError, match="1 urls for 2 pages"):
        extract_batch(pa.array(["<p>a</p>", "<p>b</p>"]), urls=["x"])


def test_charsets():
    html = (
        "<title>Café</title><p>Größere Straßen führen über die Brücke, sagte der Bürgermeister.</p>"
    )
    assert "Größere Straßen" in extract_text(
        html.encode("cp1252").replace(b"<title>", b"<meta charset=cp1252><title>")
    )
    assert "Größere Straßen" in extract_text(html.encode("utf-16"))  # BOM
    # Declared windows-1252 but really UTF-8: the bytes win.
    assert "Größere Straßen" in extract_text(b"<meta charset=windows-1252>" + html.encode())
    # Declared UTF-8 but really Latin-1: detection.
    latin1 = (
        "<meta charset=utf-8><p>Olá, a polícia chegou à cidade e a população aplaudiu.</p>".encode(
            "latin-1"
        )
    )
    assert "população" in extract_text(latin1, url="https://example.br/")


def test_robust_inputs():
    deep = "<div>" * 100_000 + "deep text" + "</div>" * 10
    assert extract_text(deep) == "deep text"
    assert extract_text("<p>unclosed <b>bold <i>both</b> after") == "unclosed bold both after"
    assert extract_text("") is None
    garbage = extract_text(b"\x00\xff\xfe\x00" * 1000)  # no exception is the contract
    assert garbage is None or garbage.strip() == garbage
    big = "<div><p>Some words, of a long page, repeated to reach many bytes.</p></div>\n" * 280_000
    assert len(big) > 20_000_000
    text = extract_text(big)
    assert text is not None and text.count("Some words") == 280_000


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000)))
def test_never_raises_on_arbitrary_input(html):
    out = extract_text(html)
    assert out is None or (out and out == out.strip())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<div>",
                "</div>",
                "<p>",
                "</p>",
                "<li>",
                "<table>",
                "<td>",
                "<a href=x>",
                "</a>",
                "<script>",
                "</script>",
                "<!--",
                "-->",
                "word ",
                "<br>",
                "&amp;",
                "<svg>",
            ]
        ),
        max_size=300,
    )
)
def test_tag_soup_never_raises(parts):
    out = extract_text("".join(parts))
    assert out is None or "<" not in out.replace("<!--", "")


def test_lone_surrogates_do_not_fail_a_batch():
    text = "<p>Words around a lone \ud800 surrogate, in a sentence long enough.</p>"
    assert "Words around a lone" in extract_text(text)
    out = extract_batch([text, "<p>fine</p>"])
    assert out.texts[1] == "fine" and "surrogate" in out.texts[0]


def test_argument_errors_are_clear():
    with pytest.raises(TypeError, match="expected bytes or str, got int"):
        extract_text(3)
    with pytest.raises(TypeError, match="url must be str or None"):
        extract_text("<p>x</p>", url=b"http://x")
    with pytest.raises(TypeError, match=r"pages\[1\]: expected bytes or str"):
        extract_batch(["<p>x</p>", None])
    with pytest.raises(ValueError, match="2 urls for 1 pages"):
        extract_batch(["<p>x</p>"], urls=["a", "b"])
    with pytest.raises(TypeError, match="must be a list"):
        extract_batch("<p>x</p>")


# ---- quality on html-dev, with the scrapinghub shingle metric as reference ----

TOKEN = re.compile(r"\w+")


def _shingles(text: str) -> Counter:
    toks = TOKEN.findall(text or "")
    return Counter(tuple(toks[i : i + 4]) for i in range(max(1, len(toks) - 3)) if toks[i : i + 4])


def _prf(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    ps, rs = [], []
    for true, pred in pairs:
        t, p = _shingles(true), _shingles(pred)
        tp = sum((t & p).values())
        if sum(p.values()):
            ps.append(tp / sum(p.values()))
        if sum(t.values()):
            rs.append(tp / sum(t.values()))
    p, r = statistics.mean(ps), statistics.mean(rs)
    return p, r, 2 * p * r / (p + r)


def test_quality_on_html_dev_sample(shared_data):
    root = shared_data / "html-dev"
    gt = json.loads((root / "ground-truth.json").read_text())
    by_type: dict[str, list[str]] = {}
    for i in sorted(gt):
        by_type.setdefault(gt[i]["pageType"], []).append(i)
    ids = [i for ids in by_type.values() for i in ids[:6]]  # 6 pages of each of the 7 types
    pages = [gzip.decompress((root / "html" / f"{i}.html.gz").read_bytes()) for i in ids]
    out = extract_batch(pages, urls=[gt[i]["url"] for i in ids])
    p, r, f1 = _prf([(gt[i]["articleBody"], t or "") for i, t in zip(ids, out.texts, strict=True)])
    # Measured 0.747 on this sample when written; trafilatura 2.3.1 scores 0.745.
    assert f1 > 0.70, (p, r, f1)
    assert sum(t is None for t in out.texts) <= 2


def test_upper_case_host_keeps_an_undeclared_legacy_page():
    # chardetng asserted on an upper-case TLD (found by fuzz/warc): the page
    # came back empty through the panic guard.
    html = "<p>Die Straße ist grün und schön, überall in der Stadt.</p>".encode("cp1252")
    lower = extract_text(html, "http://example.de/")
    assert lower is not None and "Straße" in lower
    assert extract_text(html, "http://EXAMPLE.DE/") == lower
