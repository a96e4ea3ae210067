"""A crawl stopped midway (in-process, and by ``kill -9``) resumes without refetching finished pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from crawler_faultserver import fast

from forge.crawler import CrawlConfig, Crawler
from forge.sources.webdocs import signature_rows

PAGES = [
    "index.html",
    "a.html",
    "b.html",
    "api.html",
    "pydoc.html",
    "etag.html",
    "deep/1.html",
    "deep/2.html",
]


def _page_hits(site) -> Counter:
    return Counter(p for p, _, _ in site.log if p != "/robots.txt")


def test_resume_after_stop(site, tmp_path):
    s, base = site
    cfg = CrawlConfig(seeds=tuple(base + p for p in PAGES), **fast(max_depth=0, max_concurrency=2))
    db = tmp_path / "c.duckdb"
    with Crawler(cfg, db, api_rows=signature_rows) as first:
        part = first.run(stop_after=3)
    assert part["stopped"] and part["pages_stored"] == 3
    with Crawler(cfg, db, api_rows=signature_rows) as second:  # a new instance on the same state file
        rest = second.run()
        docs = list(second.store.documents(rest["run_id"], "web_docs"))
    assert rest["resumed"] and rest["run_id"] == part["run_id"]
    assert rest["pages_stored"] == len(PAGES) == len(docs)
    hits = _page_hits(s)
    # at most the fetches in flight when it stopped (max_concurrency=2, cancelled) are repeated
    assert sum(hits.values()) <= len(PAGES) + 2
    assert sum(1 for n in hits.values() if n > 1) <= 2


def test_resume_after_kill_9(site, tmp_path):
    s, base = site
    db = tmp_path / "c.duckdb"
    cmd = [sys.executable, "-m", "forge.crawler", *(base + p for p in PAGES), "--db", str(db), "--max-depth", "0",
           "--allow-host", "127.0.0.1", "--min-delay", "0.3", "--per-host-concurrency", "1", "--concurrency", "1"]  # fmt: skip
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while sum(_page_hits(s).values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = _page_hits(s)
    assert 3 <= sum(before.values()) < len(PAGES)
    cfg = CrawlConfig(seeds=tuple(base + p for p in PAGES), **fast(max_depth=0))
    with Crawler(cfg, db, api_rows=signature_rows) as crawler:
        summary = crawler.run()
    assert summary["resumed"] and summary["pages_stored"] == len(PAGES)
    hits = _page_hits(s)
    assert set(hits) == {"/" + p for p in PAGES}
    # only the one page in flight at the kill (concurrency 1) may be fetched twice
    assert sum(hits.values()) <= len(PAGES) + 1
