"""Unit tests: URL normalization, scopes, config validation, extraction, signature parsing, backoff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from crawler_faultserver import SPHINX_API, fast, pydoc_page

from forge.crawler import BadURL, CrawlConfig, Crawler, extract_page, normalize_url
from forge.crawler.apidocs import parse_argspec, parse_param
from forge.crawler.fetcher import backoff_s, retry_after_seconds
from forge.crawler.pydocs import python_docs_candidates, python_docs_dir
from forge.sources.python.signatures import text_param_schema
from forge.sources.webdocs import signature_rows


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("HTTP://Docs.Example.ORG:80/a/./b/../c?b=2&a=1#frag", "http://docs.example.org/a/c?a=1&b=2"),
        ("https://example.org:443", "https://example.org/"),
        ("https://example.org:8443/x/", "https://example.org:8443/x/"),
        ("http://example.org/a%7eb/%41", "http://example.org/a~b/A"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
    ],
)
def test_normalize_url(raw, norm):
    assert normalize_url(raw) == norm


def test_normalize_relative_and_bad():
    assert normalize_url("../b.html#x", base="http://h/a/c/d.html") == "http://h/a/b.html"
    for bad in (
        "ftp://h/x",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http:///nohost",
        "http://h:99999/",
    ):
        with pytest.raises(BadURL):
            normalize_url(bad)


def test_scopes_and_config():
    cfg = CrawlConfig(seeds=("http://h/docs/index.html",))
    assert cfg.in_scope("http://h/docs/lib/x.html") and not cfg.in_scope("http://h/other/")
    cfg = CrawlConfig(seeds=("http://h/",), scopes=(r"re:^http://h/(lib|api)/",))
    assert cfg.in_scope("http://h/api/x") and not cfg.in_scope("http://h/blog/x")
    assert CrawlConfig.from_mapping({"seeds": ["http://h/"], "max_depth": 3}).max_depth == 3
    with pytest.raises(ValueError, match="unknown crawl config keys"):
        CrawlConfig.from_mapping({"seeds": ["http://h/"], "max_deph": 3})
    with pytest.raises(ValueError):
        CrawlConfig(seeds=())


def test_extract_main_text_links_and_directives():
    html = (
        '<html><head><title> T </title><link rel="canonical" href="/c.html">'
        '<meta name="robots" content="noindex"></head><body><nav>MENU <a href="/n">n</a></nav>'
        "<article><h1>Head</h1><p>First &amp; second.</p><script>var x=1;</script>"
        '<a href="b.html#top">b</a><a href="mailto:a@b">m</a><a rel="nofollow" href="/nf">x</a></article>'
        "<footer>FOOT</footer></body></html>"
    )
    page = extract_page(html, "http://h/d/a.html")
    assert page.title == "T" and page.canonical == "http://h/c.html" and page.noindex
    assert page.text == "Head\nFirst & second.\nbmx"  # inline elements add no spaces
    assert page.links == ["http://h/n", "http://h/d/b.html"]  # nav links still followed; nofollow not
    nofollow = extract_page('<meta name="robots" content="nofollow"><a href="x">x</a>', "http://h/")
    assert nofollow.links == [] and nofollow.text == "x"


def test_extract_survives_garbage():
    for junk in (
        "",
        "<<<>>>",
        "<dl class='py function'><dt class='sig'",
        "\x00\x01<p>ok",
        "<a href='http://[bad'>x</a>",
    ):
        page = extract_page(junk, "http://h/")
        assert isinstance(page.text, str)


def test_sphinx_signatures_from_real_format():
    sigs = {s["qualname"]: s for s in extract_page(SPHINX_API, "http://h/api.html").signatures}
    assert set(sigs) == {"demo.tools.resize", "demo.tools.Cache", "demo.tools.Cache.get"}
    resize = sigs["demo.tools.resize"]
    assert [(p["name"], p["kind"]) for p in resize["params"]] == [
        ("image", "positional_or_keyword"), ("width", "positional_or_keyword"),
        ("keep_ratio", "keyword_only"), ("options", "var_keyword"),
    ]  # fmt: skip
    assert resize["summary"] == "Resize image to width pixels."
    assert resize["param_docs"] == {"image": "the encoded image", "width": "target width in pixels"}
    assert sigs["demo.tools.Cache"]["description"] == "A bounded cache."  # the method's text is not in it
    assert sigs["demo.tools.Cache.get"]["params"][1]["optional"] is True


def test_pydoc_signatures_from_real_pydoc_output():
    sigs = {s["qualname"]: s for s in extract_page(pydoc_page(), "http://h/p.html").signatures}
    assert {"demo_pydoc.greet", "demo_pydoc.Counter.add"} <= set(sigs)
    assert [p["name"] for p in sigs["demo_pydoc.Counter.add"]["params"]] == ["n"]  # self dropped
    assert (
        sigs["demo_pydoc.greet"]["summary"] is None
        and "Greet someone." in sigs["demo_pydoc.greet"]["description"]
    )


def test_param_parsing_and_schema():
    assert parse_param("x: int = 3") == {"name": "x", "annotation": "int", "default": "3",
                                         "kind": "positional_or_keyword", "optional": False}  # fmt: skip
    assert parse_param("*") is None and parse_param("/") is None
    params = parse_argspec("(a, /, b=2, *args, c: str = 'x', **kw) -> int")
    assert [(p["name"], p["kind"]) for p in params] == [
        ("a", "positional_only"), ("b", "positional_or_keyword"), ("args", "var_positional"),
        ("c", "keyword_only"), ("kw", "var_keyword"),
    ]  # fmt: skip
    odd = parse_argspec("(x, y=<object object at 0x1>, z=1)")  # not valid Python: comma split fallback
    assert [p["name"] for p in odd] == ["x", "y", "z"]
    assert text_param_schema(params[3]) == {"type": "string", "default": "x"}
    assert text_param_schema({"name": "t", "annotation": "Path | None", "default": None, "kind": "x"}) == {
        "description": "type: Path | None"
    }


def test_retry_after_and_backoff():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    waits = [backoff_s(k, 0.5, 4.0) for k in range(6)]
    assert all(min(4.0, 0.5 * 2**k) <= w <= 2 * min(4.0, 0.5 * 2**k) for k, w in enumerate(waits))
    assert max(waits) <= 8.0


@pytest.fixture
def py_docs() -> Path:
    """Debian's python3.11-doc HTML: installed, or extracted by ``make pydocs`` (``make test`` runs it).
    Missing, the test skips — or fails under ``HEPHAESTUS_REQUIRE_PYDOCS=1`` (CI), so CI cannot
    silently stop crawling the real docs."""
    found = python_docs_dir()
    if found is None:
        looked = ", ".join(str(p) for p in python_docs_candidates())
        reason = f"Debian python3.11-doc not found (looked in {looked}); run `make pydocs`"
        if os.environ.get("HEPHAESTUS_REQUIRE_PYDOCS") == "1":
            pytest.fail(f"HEPHAESTUS_REQUIRE_PYDOCS=1 but {reason}")
        pytest.skip(reason)
    return found


def test_crawl_debian_python_docs(tmp_path, py_docs):
    """A bounded crawl of the real Python docs served by ``http.server`` on 127.0.0.1."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(py_docs)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        cfg = CrawlConfig(
            seeds=(base + "library/json.html",),
            **fast(max_depth=1, max_pages=25, read_timeout_s=5, max_bytes=5_000_000),
        )
        with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
            summary = crawler.run()
            rows = list(crawler.store.api_rows(summary["run_id"]))
    finally:
        server.shutdown()
        server.server_close()
    assert summary["pages_stored"] >= 10, summary["skipped_by_reason"]  # scope: library/ only
    by_path = {r["path"]: r for r in rows}
    dumps = json.loads(by_path["json.dumps"]["parameters"])
    assert dumps["required"] == ["obj"] and dumps["properties"]["sort_keys"]["default"] is False


def test_fast_tokenizer_matches_stdlib_parser():
    pages = [
        SPHINX_API,
        pydoc_page(),
        '<p>a &amp; b<script>if (a<b) {x="<a href=no>"}</script><!-- <a href="c"> --><a href=u1 data-x>t</a>'
        "<A HREF='u2'>T</A><br/>x 1 < 2 <style>p{}</style><img src=i alt=\"&lt;\">",
        "<dl class=\"py function\"><dt class='sig sig-object py' id=f.g><em class=sig-param>x=1</em></dt><dd><p>Doc",
        "<!DOCTYPE html><html><head><title>T &mdash; x</title><?xml-thing?></head><body><main>M</main>",
    ]
    for html in pages:
        fast_page = extract_page(html, "http://h/d/p.html", parser="fast")
        std_page = extract_page(html, "http://h/d/p.html", parser="stdlib")
        assert fast_page == std_page
    tricky = extract_page(pages[2], "http://h/d/p.html")
    assert tricky.links == ["http://h/d/u1", "http://h/d/u2"]  # the script's and comment's <a> are not links
    assert "a & b" in tricky.text and "x=" not in tricky.text and "1 < 2" in tricky.text
    with pytest.raises(ValueError):
        extract_page("x", "http://h/", parser="lxml")


def test_redirect_hop_limit_and_per_host_concurrency():
    import asyncio

    import httpx

    from forge.crawler import SafeFetcher

    active, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        if request.url.path.startswith("/hop"):
            k = int(request.url.path[4:])
            return httpx.Response(302, headers={"Location": f"/hop{k + 1}"})
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return httpx.Response(200, headers={"Content-Type": "text/html"}, text="<p>ok</p>")

    cfg = CrawlConfig(seeds=("http://127.0.0.1:9/",), **fast(max_redirects=3, per_host_concurrency=2))

    async def go():
        async with SafeFetcher(cfg, transport=httpx.MockTransport(handler)) as fetcher:
            hops = await fetcher.fetch("http://127.0.0.1:9/hop0")
            pages = await asyncio.gather(*(fetcher.fetch(f"http://127.0.0.1:9/p{i}") for i in range(6)))
            return hops, pages

    hops, pages = asyncio.run(go())
    assert hops.reason == "too_many_redirects"
    assert all(p.ok and p.text == "<p>ok</p>" for p in pages)
    assert peak == 2  # never more than per_host_concurrency requests to one host at once
