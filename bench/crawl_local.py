"""Side-by-side: our crawler vs Scrapy on the same local documentation server, in one invocation.

The server is ``python -m http.server --bind 127.0.0.1`` over Debian's ``python3.11-doc`` HTML
(installed, or extracted by ``make pydocs``), started in a subprocess. Politeness limits are off for both
(no delay, no robots.txt — there is none), concurrency 16, depth unbounded within the site.
Our crawler runs with text + API-signature extraction and its DuckDB frontier; Scrapy runs a
CrawlSpider that only follows links (``LinkExtractor``), in a venv of its own given by
``--scrapy-python`` (skipped when absent). Reported: pages, wall seconds, pages/s, CPU seconds per
page (the crawler process, children included), API signatures, and the ratio of pages/s.

    .venv/bin/python bench/crawl_local.py --scrapy-python /tmp/scrapy-venv/bin/python \\
        --out bench/results/2026-11-24_crawl_python-docs_cpu-2core.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from forge.crawler.pydocs import python_docs_dir  # noqa: E402

DOCS = python_docs_dir() or Path("/usr/share/doc/python3.11/html")  # installed, or `make pydocs`

_SPIDER = r"""
import json, re, sys, time, resource
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule
base, out = sys.argv[1], sys.argv[2]
n = {"pages": 0}
class Docs(CrawlSpider):
    name = "docs"
    start_urls = [base + "index.html"]
    # only the local server: a regex on the base URL (allow_domains does not match an IP:port host)
    rules = (Rule(LinkExtractor(allow=[re.escape(base)]), callback="parse_item", follow=True),)
    def parse_start_url(self, response):
        return self.parse_item(response)
    def parse_item(self, response):
        n["pages"] += 1
        return None
t0 = time.perf_counter()
p = CrawlerProcess(settings={"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DOWNLOAD_DELAY": 0, "TELNETCONSOLE_ENABLED": False,
    "DEPTH_LIMIT": 0, "HTTPCACHE_ENABLED": False, "COOKIES_ENABLED": False})
p.crawl(Docs)
p.start()
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
json.dump({"pages": n["pages"], "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime}, open(out, "w"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(base: str, workers: int, tmp: Path) -> dict:
    code = (
        "import json,sys,time,resource\n"
        "from forge.crawler import CrawlConfig, Crawler\nfrom forge.sources.webdocs import signature_rows\n"
        f"cfg = CrawlConfig(seeds=({base + 'index.html'!r},), max_depth=50, max_pages=5000, "
        "allow_addresses=('127.0.0.1',), min_delay_s=0, respect_robots=False, per_host_concurrency=16, "
        f"max_concurrency=16, extract_workers={workers}, api_version='3.11', license='PSF-2.0')\n"
        f"c = Crawler(cfg, {str(tmp / f'ours_{workers}.duckdb')!r}, api_rows=signature_rows)\n"
        "t0 = time.perf_counter(); s = c.run(); wall = time.perf_counter() - t0\n"
        f"n = c.export({str(tmp / f'out_{workers}')!r})\n"
        "ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]\n"
        "cpu = sum(r.ru_utime + r.ru_stime for r in ru)\n"
        "print(json.dumps({'pages': s['pages_fetched'], 'stored': s['pages_stored'], 'wall_s': wall, "
        "'cpu_s': cpu, 'apis': n['api_operations'], 'skipped': s['skipped_by_reason']}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _scrapy(python: str, base: str, tmp: Path) -> dict | None:
    if not python or not Path(python).exists():
        return None
    script, out = tmp / "spider.py", tmp / "scrapy.json"
    script.write_text(_SPIDER)
    proc = subprocess.run([python, str(script), base, str(out)], capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(out.read_text())


def _median(runs: list[dict]) -> dict:
    """The run with the median wall time (its CPU and counts travel with it)."""
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--scrapy-python", default="/tmp/scrapy-venv/bin/python")
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="our extract_workers settings to run"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs per crawler; the median is shown"
    )
    ap.add_argument("--out", type=Path, help="also write the printed table here")
    args = ap.parse_args()
    if not (args.docs / "index.html").is_file():
        print(f"skipped: {args.docs} missing (apt-get install python3.11-doc)")
        return 0
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "-d", str(args.docs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            runs: dict[str, list[dict]] = {}
            for rep in range(args.repeats):  # interleaved, so a noisy minute hits every crawler alike
                for w in args.workers:
                    runs.setdefault(f"ours (extract_workers={w})", []).append(_ours(base, w, tmp / f"r{rep}"))
                sc = _scrapy(args.scrapy_python, base, tmp)
                if sc:
                    runs.setdefault("scrapy", []).append(sc)
            rows = [(name, _median(rs)) for name, rs in runs.items() if name != "scrapy"]
            scrapy = _median(runs["scrapy"]) if "scrapy" in runs else None
            spread = {name: [round(r["pages"] / r["wall_s"], 1) for r in rs] for name, rs in runs.items()}
    finally:
        server.terminate()
        server.wait()
    n_html = sum(1 for p in args.docs.rglob("*.html") if "_sources" not in p.parts)
    lines = [
        f"# local doc-site crawl: ours vs Scrapy -- {date.today().isoformat()} -- {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})",
        f"# site: Debian python3.11-doc, {n_html} HTML files, http.server on 127.0.0.1; politeness off, "
        "concurrency 16; median of interleaved runs; ours = fetch + DuckDB frontier + main-text + API-signature extraction (forge.crawler.htmltok tokenizer)",
        f"{'crawler':34} {'pages':>6} {'wall_s':>8} {'pages/s':>8} {'cpu_ms/page':>12} {'api_sigs':>9}",
    ]
    for name, r in rows:
        pps = r["pages"] / r["wall_s"]
        lines.append(f"{name:34} {r['pages']:6d} {r['wall_s']:8.2f} {pps:8.1f} {1000 * r['cpu_s'] / r['pages']:12.1f} "
                     f"{r['apis']:9d}")  # fmt: skip
    if scrapy:
        pps = scrapy["pages"] / scrapy["wall_s"]
        lines.append(f"{'scrapy CrawlSpider (links only)':34} {scrapy['pages']:6d} {scrapy['wall_s']:8.2f} {pps:8.1f} "
                     f"{1000 * scrapy['cpu_s'] / scrapy['pages']:12.1f} {'-':>9}")  # fmt: skip
        for name, r in rows:
            lines.append(f"ratio pages/s {name} / scrapy: {r['pages'] / r['wall_s'] / pps:.2f}")
    else:
        lines.append("scrapy: skipped (no --scrapy-python venv)")
    lines.append(f"median of {args.repeats} interleaved runs; pages/s of every run: {json.dumps(spread)}")
    lines.append(f"load average at the end (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, r in rows:
        lines.append(
            f"{name} skipped by reason: {json.dumps(r['skipped'], sort_keys=True)}; stored {r['stored']}"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
