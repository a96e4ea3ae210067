"""``hephaestus crawl SEED... --max-depth N --max-pages N --allow-host HOST --db PATH`` end to end,
against the fault-injecting site on 127.0.0.1 (and without the allow-list: refused, counted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _hephaestus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_cli_crawl_prints_a_summary_and_exports(site, tmp_path):
    _, base = site
    db, out = tmp_path / "c.duckdb", tmp_path / "out"
    proc = _hephaestus(
        "crawl", base + "index.html", "--max-depth", "1", "--max-pages", "8", "--allow-host", "127.0.0.1",
        "--db", str(db), "--out", str(out), "--min-delay", "0", "--no-robots", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert 1 <= summary["pages_stored"] <= 8
    assert summary["skipped_by_reason"]  # the fault site always yields some counted skips
    assert summary["exported"]["documents"] == summary["pages_stored"]
    assert db.exists() and any(out.glob("*.parquet"))


def test_cli_crawl_without_allow_list_refuses_loopback(site, tmp_path):
    srv_site, base = site
    before = len(srv_site.log)
    proc = _hephaestus(
        "crawl", base + "index.html", "--max-depth", "1", "--db", str(tmp_path / "c.duckdb"), "--json"
    )
    # nothing fetched is a failure that says why and how to allow the host
    assert proc.returncode != 0 and "--allow-host" in proc.stderr, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["pages_stored"] == 0
    assert (
        sum(
            n for reason, n in summary["skipped_by_reason"].items() if "blocked" in reason or "ssrf" in reason
        )
        >= 1
    ), summary
    assert len(srv_site.log) == before  # not one request reached the local server
