"""Fuzzing the crawler's extraction: malformed HTML, wrong charsets, gigantic attributes.

Properties: both HTML parsers return a ``PageExtract`` for any text (links normalized, no exception),
``extract_for_store`` (what a worker runs) returns what the store keeps, and decoding a body under
any declared charset gives text or the fetcher's counted ``bad_encoding``.

Found here: the fast tokenizer took minutes and hundreds of MB on pages with unpaired quotes and
megabyte attributes (a regex that backtracked through each one, retried from every later ``<``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from forge.crawler.crawl import extract_for_store
from forge.crawler.extract import PageExtract, extract_page
from forge.crawler.fetcher import _decode
from forge.sources.webdocs import signature_rows
from tests.fuzz.fuzzing import bounded

TAGS = ["a", "html", "head", "title", "body", "p", "div", "dl", "dt", "dd", "em", "code", "pre", "script", "style",
        "link", "meta", "base", "span", "table", "!--", "![CDATA[", "!DOCTYPE"]  # fmt: skip
ATTRS = ["href", "rel", "class", "id", "name", "content", "charset", "src"]
CLASSES = ["py function", "py class", "py method", "sig sig-object py", "sig-name descname", "sig-param",
           "headerlink", "canonical", "robots", "noindex"]  # fmt: skip


@st.composite
def html_soup(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(st.integers(0, 5))
        tag = draw(st.sampled_from(TAGS))
        if kind == 0:
            parts.append(draw(st.text(max_size=40)))
        elif kind == 1:
            attrs = " ".join(
                f"{draw(st.sampled_from(ATTRS))}={draw(st.sampled_from(['', chr(34), chr(39)]))}"
                f"{draw(st.sampled_from(CLASSES) | st.text(max_size=30))}"
                for _ in range(draw(st.integers(0, 3)))
            )
            parts.append(f"<{tag} {attrs}{draw(st.sampled_from(['>', '/>', '', ' ']))}")
        elif kind == 2:
            parts.append(f"</{tag}{draw(st.sampled_from(['>', '', ' x>']))}")
        elif kind == 3:  # a gigantic attribute or text run
            size = draw(st.sampled_from([1_000, 20_000, 300_000]))
            parts.append(f'<a href="{"h" * size}" class="{"c " * (size // 10)}">x</a>')
        elif kind == 4:
            parts.append(
                draw(
                    st.sampled_from(
                        ["&amp;", "&#0;", "&#x110000;", "&#99999999999;", "&bogus", "<<<<", "\x00", "\ud800"]
                    )
                )
            )
        else:
            parts.append("<div>" * draw(st.integers(1, 2000)))
    return "".join(parts)


@given(html_soup(), st.sampled_from(["fast", "stdlib"]))
def test_any_html_extracts(html: str, parser: str) -> None:
    page = bounded(
        f"crawler_extract_{parser}", extract_page, html, "https://docs.example/a/b.html", True, parser
    )
    assert isinstance(page, PageExtract)
    assert all(link.startswith(("http://", "https://")) for link in page.links)


@given(html_soup())
def test_extract_for_store_keeps_a_page_or_raises_nothing(html: str) -> None:
    out = bounded("crawler_extract_for_store", extract_for_store, html, "https://docs.example/x.html",
                  signature_rows, "web_docs", "", "unknown", "2026-01-01T00:00:00+00:00")  # fmt: skip
    assert isinstance(out["text"], str) and out["n_apis"] >= 0


@given(
    st.binary(max_size=3000),
    st.one_of(
        st.none(),
        st.sampled_from(["utf-8", "latin-1", "utf-16", "shift_jis", "no-such-charset", "utf-32", "ascii"]),
    ),
)
def test_any_body_under_any_charset_decodes_or_is_bad_encoding(body: bytes, charset: str | None) -> None:
    """Text, or ``UnicodeDecodeError``, which the fetcher counts as the page's ``bad_encoding``."""
    meta = b'<meta charset="utf-16">' if charset is None and body[:1] == b"\x00" else b""
    try:
        assert isinstance(bounded("crawler_decode", _decode, meta + body, charset), str)
    except UnicodeDecodeError:
        pass
