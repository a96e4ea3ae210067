"""``python -m forge.crawler``: crawl from the shell and print a summary (what ``hephaestus crawl`` calls).

Example (the Debian Python docs served locally)::

    python -m http.server --bind 127.0.0.1 8000 -d /usr/share/doc/python3.11/html &
    python -m forge.crawler http://127.0.0.1:8000/index.html --max-depth 6 --max-pages 2000 \\
        --allow-host 127.0.0.1 --db /tmp/crawl.duckdb --out /tmp/crawl_out --min-delay 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from forge.crawler.config import CrawlConfig
from forge.crawler.crawl import Crawler
from forge.sources.webdocs import signature_rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m forge.crawler", description=__doc__.splitlines()[0])
    p.add_argument("seeds", nargs="+", help="seed URLs (http/https)")
    p.add_argument("--db", required=True, help="the crawl's DuckDB state file (frontier + pages)")
    p.add_argument("--out", help="write documents/API/dropped Parquet files here after the run")
    p.add_argument("--max-depth", type=int, default=2)
    p.add_argument("--max-pages", type=int, default=1000)
    p.add_argument("--scope", action="append", default=[], help="URL prefix, or re:<regex>; repeatable")
    p.add_argument(
        "--allow-host", action="append", default=[], help="IP, CIDR or host exempt from the SSRF guard"
    )
    p.add_argument("--min-delay", type=float, default=1.0, help="seconds between requests to one host")
    p.add_argument("--per-host-concurrency", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="HTML parsing processes (0 = inline)"
    )
    p.add_argument("--no-robots", action="store_true", help="ignore robots.txt (only for your own servers)")
    p.add_argument("--api-version", default="")
    p.add_argument("--source", default="web_docs")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = CrawlConfig(
        seeds=tuple(args.seeds), max_depth=args.max_depth, max_pages=args.max_pages, scopes=tuple(args.scope),
        allow_addresses=tuple(args.allow_host), min_delay_s=args.min_delay,
        per_host_concurrency=args.per_host_concurrency, max_concurrency=args.concurrency,
        extract_workers=args.workers, respect_robots=not args.no_robots, api_version=args.api_version,
        source=args.source,
    )  # fmt: skip
    progress = None
    try:
        from tqdm import tqdm

        progress = tqdm(total=args.max_pages, unit="page", file=sys.stderr)
    except ImportError:  # the summary still prints
        pass
    with Crawler(cfg, args.db, api_rows=signature_rows) as crawler:
        summary = crawler.run(stop_after=args.stop_after, progress=progress)
        if progress is not None:
            progress.close()
        if args.out:
            summary["exported"] = crawler.export(args.out)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
