"""``hephaestus crawl SEED...``: the polite documentation crawler from the shell.

Runs (or resumes) a crawl whose state lives in a DuckDB file (``--db``), exports the documents and
the API signatures it found as Parquet under ``--out``, and prints a summary. When nothing was
stored it says why in words: the SSRF guard refused every seed (with the ``--allow-host`` to pass),
the server refused the connection, or the skip reasons.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli.common import (
    NothingProduced,
    UserError,
    cli_dir,
    emit,
    home,
    new_output_dir,
    non_negative_float,
    non_negative_int,
    positive_int,
    progress_bar,
)


def http_url(text: str) -> str:
    """A seed: an http(s) URL with a host (``ftp://``, ``file://`` and bare names are refused)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


class _Progress:
    """tqdm-like ``update(1)`` per committed URL, whose total follows the pages discovered so far
    (done + still queued, capped by ``--max-pages``), refreshed at most twice a second."""

    def __init__(self, bar: Any, crawler: Any, max_pages: int) -> None:
        self.bar, self.crawler, self.max_pages = bar, crawler, max_pages
        self.done, self.last = 0, 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last > 0.5:
            self.last = now
            self.bar.total = min(self.max_pages, self.done + self.crawler.store.n_queued())
        self.bar.update(n)


def _refused(seeds: list[str]) -> list[str]:
    """``host:port`` of the seeds where nothing listens (a TCP connect refused within 2 s)."""
    out = []
    for seed in seeds:
        parts = urlsplit(seed)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=2):
                pass
        except ConnectionRefusedError:
            out.append(f"{parts.hostname}:{port}")
        except OSError:
            pass
    return out


def _why_nothing(args: argparse.Namespace, reasons: dict[str, int]) -> str:
    hosts = sorted({urlsplit(s).hostname or "" for s in args.seeds})
    if reasons.get("ssrf_blocked") and set(reasons) <= {"ssrf_blocked", "robots"}:
        allow = " ".join(f"--allow-host {h}" for h in hosts)
        return (
            "every seed was refused by the SSRF guard (a private, loopback or metadata address); "
            f"to crawl a server you run yourself pass {allow}"
        )
    refused = _refused(args.seeds)
    if refused:
        return f"connection refused: nothing listens on {', '.join(refused)}"
    if reasons:
        shown = ", ".join(f"{r} {n}" for r, n in reasons.items())
        return f"no page stored; URLs skipped by reason: {shown}"
    return "no page stored (the seeds were already crawled in this --db; use a new --db to start over)"


def _crawl(args: argparse.Namespace) -> int:
    from forge.crawler.config import CrawlConfig
    from forge.crawler.crawl import Crawler
    from forge.sources.webdocs import signature_rows

    db: Path = args.db.expanduser()
    if not db.resolve().is_relative_to(home()) and not db.parent.is_dir():
        raise UserError(f"crawl --db {db}: directory {db.parent} does not exist")
    if db.is_dir():
        raise UserError(f"crawl --db {db} is a directory; --db is the crawl's DuckDB file")
    db.parent.mkdir(parents=True, exist_ok=True)
    out = new_output_dir(args.out, "crawl")
    cfg = CrawlConfig(
        seeds=tuple(args.seeds), max_depth=args.max_depth, max_pages=args.max_pages, scopes=tuple(args.scope),
        allow_addresses=tuple(args.allow_host), min_delay_s=args.min_delay,
        per_host_concurrency=args.per_host_concurrency, max_concurrency=args.concurrency,
        extract_workers=args.workers, respect_robots=not args.no_robots, api_version=args.api_version,
        source=args.source, max_retries=args.max_retries,
    )  # fmt: skip
    bar = progress_bar("page")
    with Crawler(cfg, db, api_rows=signature_rows) as crawler:
        progress = _Progress(bar, crawler, args.max_pages) if bar is not None else None
        try:
            summary = crawler.run(stop_after=args.stop_after, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        summary["exported"] = crawler.export(out)
    summary["out"], summary["db"] = str(out), str(db)
    reasons = summary.get("skipped_by_reason", {})
    ex = summary["exported"]
    lines = [
        f"crawl: {summary['pages_fetched']:,} pages fetched, {summary['pages_stored']:,} stored, "
        f"{summary['not_modified']:,} not modified; API signatures: {summary['api_signatures']:,}",
        f"skipped: {sum(reasons.values()):,}" + (" by reason:" if reasons else ""),
        *(f"  {r:<28} {n:>8,}" for r, n in reasons.items()),
        f"queued left: {summary['queued_left']:,}; {summary.get('elapsed_s', 0):.1f} s",
        f"written: {out} (documents {ex['documents']:,}, api_operations {ex['api_operations']:,}, "
        f"dropped {ex['dropped']:,}); state: {db}",
    ]
    emit(args, summary, "\n".join(lines))
    if summary["pages_stored"] == 0 and not summary.get("stopped"):
        raise NothingProduced(_why_nothing(args, reasons))
    return 0


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "crawl",
        parents=[common],
        help="polite multi-level documentation crawl -> raw.documents, raw.web_docs_operations",
        description="Crawl documentation sites from SEED URLs (robots.txt, per-host rate limits, "
        "retries, an SSRF guard that refuses private and loopback addresses unless --allow-host), "
        "then export the pages and the API signatures found on them as Parquet. Rerunning with the "
        "same --db resumes the crawl and re-validates pages with ETag/Last-Modified.",
        epilog="example: hephaestus crawl http://127.0.0.1:8000/index.html --allow-host 127.0.0.1 "
        "--max-depth 2 --min-delay 0",
    )
    s.add_argument("seeds", nargs="+", type=http_url, metavar="SEED", help="start URLs (http:// or https://)")
    s.add_argument(
        "--db",
        type=Path,
        default=cli_dir("crawl", "crawl.duckdb"),
        help="the crawl's DuckDB state file (frontier + pages; reuse it to resume) (default: %(default)s)",
    )
    s.add_argument(
        "--out",
        type=Path,
        default=cli_dir("raw", "web_docs"),
        help="output directory for documents/API/dropped Parquet (default: %(default)s)",
    )
    s.add_argument(
        "--max-depth", type=non_negative_int, default=2, help="link hops from a seed (default: %(default)s)"
    )
    s.add_argument(
        "--max-pages", type=positive_int, default=1000, help="fetches per run (default: %(default)s)"
    )
    s.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="PREFIX",
        help="only follow URLs starting with PREFIX (or matching re:<regex>); repeatable; "
        "default: the seeds' hosts",
    )
    s.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="IP, CIDR or host name exempt from the SSRF guard (e.g. 127.0.0.1 for a local server); repeatable",
    )
    s.add_argument(
        "--min-delay",
        type=non_negative_float,
        default=1.0,
        help="seconds between requests to one host (default: %(default)s)",
    )
    s.add_argument(
        "--per-host-concurrency",
        type=positive_int,
        default=2,
        help="requests in flight per host (default: %(default)s)",
    )
    s.add_argument(
        "--concurrency", type=positive_int, default=8, help="requests in flight in all (default: %(default)s)"
    )
    s.add_argument(
        "--workers",
        type=non_negative_int,
        default=min(2, os.cpu_count() or 1),
        help="HTML parsing processes, 0 = in this process (default: %(default)s)",
    )
    s.add_argument(
        "--max-retries",
        type=non_negative_int,
        default=3,
        help="extra attempts after a timeout, 5xx, 429 or refused connection (default: %(default)s)",
    )
    s.add_argument("--no-robots", action="store_true", help="ignore robots.txt (only for your own servers)")
    s.add_argument("--api-version", default="", help="version column of the extracted API rows (e.g. 3.11)")
    s.add_argument(
        "--source",
        default="web_docs",
        help="source column of the rows and name of the API file (default: %(default)s)",
    )
    s.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)
    s.set_defaults(fn=_crawl)
