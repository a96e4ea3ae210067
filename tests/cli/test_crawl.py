"""`hephaestus crawl` against a documentation fixture served on 127.0.0.1: a summary when pages come
back; in words why when none do (SSRF guard with the --allow-host to pass, connection refused)."""

from __future__ import annotations

import functools
import json
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DOCSITE = Path(__file__).resolve().parents[1] / "fixtures" / "docsite"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site():
    handler = functools.partial(_Quiet, directory=str(DOCSITE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there


def test_crawl_prints_a_summary_and_exports(cli, site, home):
    r = cli("crawl", site, "--allow-host", "127.0.0.1", "--min-delay", "0", "--workers", "0")
    assert r.rc == 0, r.err
    assert "pages fetched" in r.out and "API signatures:" in r.out
    out = home / "cli" / "raw" / "web_docs"
    assert f"written: {out}" in r.out and (out / "documents.parquet").exists()
    r = cli("crawl", site, "--allow-host", "127.0.0.1", "--min-delay", "0", "--workers", "0", "--json",
            "--db", home / "other.duckdb")  # fmt: skip
    assert r.rc == 0, r.err
    assert json.loads(r.out)["pages_stored"] > 0


def test_every_seed_blocked_hints_at_allow_host(cli, fails, site):
    fails(cli("crawl", site, "--min-delay", "0", "--workers", "0"), 1, "SSRF guard", "--allow-host 127.0.0.1")


def test_connection_refused_is_said_as_such(cli, fails):
    port = _closed_port()
    r = cli("crawl", f"http://127.0.0.1:{port}/", "--allow-host", "127.0.0.1", "--min-delay", "0",
            "--max-retries", "0", "--workers", "0")  # fmt: skip
    fails(r, 1, "connection refused", f"127.0.0.1:{port}")


def test_crawl_bad_input(cli, fails, tmp_path):
    fails(cli("crawl", "ftp://example.org/"), 2, "not an http:// or https:// URL")
    fails(cli("crawl", "http://127.0.0.1/", "--max-pages", "0"), 2, "not a positive integer")
    fails(cli("crawl", "http://127.0.0.1/", "--db", tmp_path / "no" / "crawl.duckdb"), 1, "does not exist")


def test_crawl_help_lists_its_flags(cli):
    r = cli("crawl", "--help")
    assert r.rc == 0 and "--allow-host" in r.out and "--max-depth" in r.out and "SEED" in r.out
