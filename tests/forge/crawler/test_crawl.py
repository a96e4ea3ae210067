"""End-to-end crawls of the fault-injecting site on 127.0.0.1: every fault counted, politeness
kept, canonical/redirect de-duplication, API extraction, conditional re-fetch and export."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from crawler_faultserver import fast

from forge.crawler import CrawlConfig, Crawler
from forge.crawler.fetcher import SafeFetcher
from forge.sources.webdocs import signature_rows


@pytest.fixture
def sent(monkeypatch):
    """(path, time) of every request: the moment the crawler's politeness wait let it go.

    Spacing is the crawler's behaviour, so it is read on the client, when ``_take_slot`` returns:
    the server's arrival times also carry both sides' scheduling delays, which on a loaded
    machine shrink or stretch a gap either way. The slot is taken by the task that then sends.
    """
    log: list[tuple[str, float]] = []
    released: dict[object, float] = {}
    take, one = SafeFetcher._take_slot, SafeFetcher._one

    async def timed_take(self, key):
        st = await take(self, key)
        released[asyncio.current_task()] = time.monotonic()
        return st

    async def timed_one(self, url, *args, **kwargs):
        log.append((urlsplit(url).path, released.pop(asyncio.current_task())))
        return await one(self, url, *args, **kwargs)

    monkeypatch.setattr(SafeFetcher, "_take_slot", timed_take)
    monkeypatch.setattr(SafeFetcher, "_one", timed_one)
    return log


def test_fault_site_every_fault_counted(site, tmp_path, sent):
    s, base = site
    cfg = CrawlConfig(seeds=(base + "index.html",), **fast())
    with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
        summary = crawler.run()
        reasons = summary["skipped_by_reason"]
        assert reasons["robots"] == 1  # /private/secret.html
        assert s.hits("/private/secret.html") == 0
        assert reasons["out_of_scope"] == 2  # example.com and 10.0.0.1 links are not even queued
        assert reasons["http_404"] >= 1  # missing.html (+ pydoc's link to builtins.html)
        for reason in ("redirect_loop", "too_large", "bad_content_type", "binary_body", "timeout", "http_500",
                       "bad_encoding", "redirect_out_of_scope"):  # fmt: skip
            assert reasons.get(reason) == 1, (reason, reasons)
        assert s.hits("/e500.html") == 2  # first try + max_retries=1
        assert s.hits("/slow.html") == 2
        # 429 then Retry-After: 1 honoured before the second request
        assert s.hits("/r429.html") == 2
        times = [t for p, t in sent if p == "/r429.html"]
        assert len(times) == 2 and times[1] - times[0] >= 1.0
        assert summary["events"]["retry_after_honoured"] == 1
        assert s.hits("/robots.txt") == 1
        assert all(h["user-agent"].startswith("HephaestusForge/") for _, _, h in s.log)
        # depth: seed 0 -> deep/1 (1) -> deep/2 (2); deep/3 would be depth 3 > max_depth
        assert s.hits("/deep/2.html") == 1 and s.hits("/deep/3.html") == 0
        out = crawler.export(tmp_path / "out")

    docs = pq.read_table(tmp_path / "out" / "documents.parquet").to_pylist()
    uris = [d["uri"] for d in docs]
    assert len(uris) == len(set(uris))
    by_uri = {d["uri"]: d for d in docs}
    # dup.html declares a.html canonical; redirect.html lands on b.html: one document each
    assert base + "dup.html" not in by_uri and base + "redirect.html" not in by_uri
    # a redirect's target may already be in flight when the redirect is followed: at most one extra fetch
    assert s.hits("/b.html") <= 2 and s.hits("/a.html") == 1
    assert reasons["duplicate_of_stored"] >= 1
    assert base + "r429.html" in by_uri and base + "malformed.html" in by_uri
    index = by_uri[base + "index.html"]
    assert "Welcome to the demo docs." in index["text"]
    assert "NAVTEXT" not in index["text"] and "FOOTERTEXT" not in index["text"]
    assert index["depth"] == 0 and index["parent_uri"] is None and index["last_modified"]
    assert (
        by_uri[base + "a.html"]["depth"] == 1 and by_uri[base + "a.html"]["parent_uri"] == base + "index.html"
    )
    api_doc = by_uri[base + "api.html"]
    assert "SIDEBARTEXT" not in api_doc["text"] and "Helpers for the demo." in api_doc["text"]

    apis = pq.read_table(tmp_path / "out" / "web_docs.parquet").to_pylist()
    by_path = {a["path"]: a for a in apis}
    assert {"demo.tools.resize", "demo.tools.Cache", "demo.tools.Cache.get", "demo_pydoc.greet",
            "demo_pydoc.Counter.add"} <= set(by_path)  # fmt: skip
    assert (
        "demo.tools.VERSION" not in by_path and "m.f" in by_path
    )  # data is not a call; malformed page still parsed
    resize = json.loads(by_path["demo.tools.resize"]["parameters"])
    assert resize["required"] == ["image", "width"]
    assert resize["properties"]["width"]["type"] == "integer"
    assert resize["properties"]["keep_ratio"] == {"default": True, "type": "boolean"}
    assert resize["properties"]["image"]["description"] == "the encoded image"
    assert by_path["demo.tools.resize"]["source"] == "web_docs"
    get = json.loads(by_path["demo.tools.Cache.get"]["parameters"])
    assert get["required"] == ["key"]  # `default` is inside [ ] brackets: optional
    greet = json.loads(by_path["demo_pydoc.greet"]["parameters"])
    assert greet["required"] == ["name"] and greet["properties"]["loud"]["default"] is False
    assert out["api_operations"] == len(apis) and len({a["api_id"] for a in apis}) == len(apis)
    dropped = pq.read_table(tmp_path / "out" / "dropped.parquet").to_pylist()
    assert {d["reason"] for d in dropped} >= {"robots", "timeout", "too_large"}


def test_rebuild_is_conditional(site, tmp_path):
    s, base = site
    cfg = CrawlConfig(seeds=(base + "index.html",), **fast(max_depth=1))
    with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
        first = crawler.run()
    n_first = len(s.log)
    # next week's rebuild: a new run
    with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
        second = crawler.run()
        docs = list(crawler.store.documents(second["run_id"], "web_docs"))
    assert second["run_id"] == first["run_id"] + 1 and not second["resumed"]
    later = s.log[n_first:]
    etag_requests = [h for p, _, h in later if p == "/etag.html"]
    assert etag_requests and etag_requests[0]["if-none-match"] == '"v1"'
    # index, a, b, api, pydoc, dup, etag answer 304: their stored pages are kept, not re-downloaded
    assert second["not_modified"] >= 7
    assert second["pages_downloaded"] == first["pages_downloaded"] - second["not_modified"]
    assert second["pages_stored"] == first["pages_stored"]
    assert {d["uri"] for d in docs} >= {base + "index.html", base + "etag.html", base + "api.html"}
    assert second["api_signatures"] == first["api_signatures"]


def test_rate_limit_spaces_requests(site, tmp_path, sent):
    s, base = site
    cfg = CrawlConfig(
        seeds=(base + "deep/1.html",), **fast(min_delay_s=0.25, per_host_concurrency=1, max_depth=2)
    )
    with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
        crawler.run()
    assert len(s.log) == 4  # robots.txt + 3 pages
    times = sorted(t for _, t in sent)
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.25 - 5e-3, gaps  # asyncio wakes within its clock resolution of the deadline


def test_page_budget(site, tmp_path):
    s, base = site
    cfg = CrawlConfig(seeds=(base + "index.html",), **fast(max_pages=3, max_concurrency=2))
    with Crawler(cfg, tmp_path / "c.duckdb", api_rows=signature_rows) as crawler:
        summary = crawler.run()
    assert summary["pages_fetched"] == 3
    assert summary["queued_left"] > 0
    assert len([p for p, _, _ in s.log if p != "/robots.txt"]) == 3


def test_crawl_and_export_one_call(site, tmp_path):
    from forge.crawler import crawl_and_export

    s, base = site
    cfg = CrawlConfig(seeds=(base + "api.html",), **fast(max_depth=0))
    summary = crawl_and_export(cfg, tmp_path / "c.duckdb", tmp_path / "out", api_rows=signature_rows)
    assert summary["exported"] == {"documents": 1, "api_operations": 3, "dropped": 0}
    assert pq.read_table(tmp_path / "out" / "web_docs.parquet").num_rows == 3


def test_without_api_rows_pages_carry_no_apis(site, tmp_path):
    """The crawler builds no API rows itself: without ``api_rows`` the API page is stored, rowless."""
    from forge.crawler import crawl_and_export

    s, base = site
    cfg = CrawlConfig(seeds=(base + "api.html",), **fast(max_depth=0))
    summary = crawl_and_export(cfg, tmp_path / "c.duckdb", tmp_path / "out")
    assert summary["exported"] == {"documents": 1, "api_operations": 0, "dropped": 0}
    assert summary["api_signatures"] == 0
