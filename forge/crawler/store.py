"""The crawl's persistent state in one small DuckDB file: frontier, stored pages, counters, runs.

Single writer: only the crawler process opens this file (it is not the warehouse). Every page's
outcome is committed in one transaction (its frontier state, its stored content, the links it
adds to the frontier, the counters), so a crawl killed at any instant resumes from the last
committed page: finished pages are never fetched again, unfinished ones are simply still queued.

A run ends when the frontier is exhausted or the page budget is spent. The next ``begin_run``
after a finished run starts a new run (the weekly rebuild): the frontier restarts from the seeds,
stored pages stay, and their ETag / Last-Modified turn the fetches into conditional requests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from forge.core.ids import content_sha256, unique_name

_DDL = """
CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
  config_json VARCHAR);
CREATE TABLE IF NOT EXISTS frontier (url VARCHAR PRIMARY KEY, depth INTEGER, parent_uri VARCHAR, seq BIGINT,
  state VARCHAR, reason VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS pages (url VARCHAR PRIMARY KEY, uri VARCHAR, status INTEGER, content_type VARCHAR,
  title VARCHAR, text VARCHAR, sha256 VARCHAR, depth INTEGER, parent_uri VARCHAR, fetched_at TIMESTAMPTZ,
  validated_at TIMESTAMPTZ, etag VARCHAR, last_modified VARCHAR, links VARCHAR[], apis VARCHAR, n_apis INTEGER,
  last_run INTEGER);
CREATE TABLE IF NOT EXISTS counters (run_id INTEGER, key VARCHAR, n BIGINT, PRIMARY KEY (run_id, key));
"""
_PAGE_COLS = ("url", "uri", "status", "content_type", "title", "text", "sha256", "depth", "parent_uri",
              "fetched_at", "validated_at", "etag", "last_modified", "links", "apis", "n_apis", "last_run")  # fmt: skip


class CrawlStore:
    """DuckDB-backed frontier and page cache of one crawl (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.con.execute(_DDL)
        self._seq = self.con.execute("SELECT coalesce(max(seq), 0) FROM frontier").fetchone()[0]

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------ runs
    def begin_run(self, seeds: Iterable[str], config: dict[str, Any]) -> tuple[int, bool]:
        """(run_id, resumed): continue the unfinished run, or start a new one from ``seeds``."""
        last = self.con.execute(
            "SELECT run_id, finished_at FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        resumed = last is not None and last[1] is None
        with self._tx():
            if resumed:
                run_id = last[0]
            else:
                run_id = (last[0] + 1) if last else 1
                self.con.execute(
                    "INSERT INTO runs VALUES (?, ?, NULL, ?)",
                    [run_id, datetime.now(UTC), json.dumps(config, default=str)],
                )
                self.con.execute("DELETE FROM frontier")
            self._enqueue(list(seeds), 0, None)
        return run_id, resumed

    def finish_run(self, run_id: int) -> None:
        self.con.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", [datetime.now(UTC), run_id])

    def latest_run(self) -> int | None:
        row = self.con.execute("SELECT max(run_id) FROM runs").fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ frontier
    def _enqueue(self, urls: list[str], depth: int, parent: str | None, state: str = "queued",
                 reason: str | None = None) -> None:  # fmt: skip
        if not urls:
            return
        seqs = list(range(self._seq + 1, self._seq + 1 + len(urls)))
        self._seq += len(urls)
        self.con.execute(
            "INSERT INTO frontier SELECT unnest($1), $2, $3, unnest($4), $5, $6, NULL ON CONFLICT DO NOTHING",
            [urls, depth, parent, seqs, state, reason],
        )

    def claim(self, limit: int, exclude: Iterable[str]) -> list[tuple[str, int, str | None]]:
        """Up to ``limit`` queued URLs in breadth-first order (depth, then discovery), not in ``exclude``."""
        if limit <= 0:
            return []
        return self.con.execute(
            "SELECT url, depth, parent_uri FROM frontier WHERE state = 'queued' AND NOT list_contains($1, url) "
            "ORDER BY depth, seq LIMIT $2",
            [list(exclude), limit],
        ).fetchall()

    def n_queued(self) -> int:
        return self.con.execute("SELECT count(*) FROM frontier WHERE state = 'queued'").fetchone()[0]

    def page(self, url: str) -> dict[str, Any] | None:
        """The stored page fetched from ``url`` (any run), or None."""
        cur = self.con.execute(f"SELECT {', '.join(_PAGE_COLS)} FROM pages WHERE url = ?", [url])
        row = cur.fetchone()
        return dict(zip(_PAGE_COLS, row, strict=True)) if row else None

    def stored_elsewhere(self, uri: str, url: str, run_id: int) -> bool:
        """Whether another frontier URL of this run already stored the page ``uri`` (dedup)."""
        q = "SELECT count(*) FROM pages WHERE uri = ? AND url <> ? AND last_run = ?"
        return self.con.execute(q, [uri, url, run_id]).fetchone()[0] > 0

    def complete(
        self,
        run_id: int,
        url: str,
        *,
        state: str,
        reason: str | None,
        detail: str = "",
        page: dict[str, Any] | None = None,
        links: list[str] = (),  # type: ignore[assignment]
        link_depth: int = 0,
        skipped_links: dict[str, list[str]] | None = None,
        also_done: Iterable[str] = (),
        counters: Counter | None = None,
    ) -> None:
        """Commit one URL's outcome atomically (see the module docstring)."""
        with self._tx():
            self.con.execute(
                "UPDATE frontier SET state = ?, reason = ?, detail = ? WHERE url = ?",
                [state, reason, detail[:500], url],
            )
            if page is not None:
                values = [page.get(c) for c in _PAGE_COLS]
                self.con.execute(
                    f"INSERT OR REPLACE INTO pages VALUES ({', '.join('?' * len(_PAGE_COLS))})", values
                )
            for other in also_done:  # a redirect target or canonical URL now stored: never fetch it
                self.con.execute(
                    "UPDATE frontier SET state = 'done', reason = 'stored_via', detail = ? "
                    "WHERE url = ? AND state = 'queued'",
                    [url, other],
                )
                self._enqueue([other], link_depth - 1, url, state="done", reason="stored_via")
            self._enqueue(list(links), link_depth, url)
            for why, urls in (skipped_links or {}).items():
                self._enqueue(urls, link_depth, url, state="skipped", reason=why)
            if counters:
                self.add_counters(run_id, counters)

    def add_counters(self, run_id: int, counters: Counter) -> None:
        items = [(k, int(v)) for k, v in counters.items() if v]
        if not items:
            return
        self.con.execute(
            "INSERT INTO counters SELECT $1, unnest($2), unnest($3) "
            "ON CONFLICT (run_id, key) DO UPDATE SET n = counters.n + excluded.n",
            [run_id, [k for k, _ in items], [v for _, v in items]],
        )

    def counters(self, run_id: int) -> dict[str, int]:
        rows = self.con.execute(
            "SELECT key, n FROM counters WHERE run_id = ? ORDER BY key", [run_id]
        ).fetchall()
        return {k: int(n) for k, n in rows}

    def reasons(self) -> dict[str, int]:
        """Skipped/failed frontier URLs of the current run, by reason."""
        rows = self.con.execute(
            "SELECT reason, count(*) FROM frontier WHERE state IN ('skipped', 'failed') GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        return {r: int(n) for r, n in rows}

    def skipped(self) -> Iterator[tuple[str, str, str]]:
        """(url, reason, detail) of every skipped or failed URL of the current run."""
        cur = self.con.execute(
            "SELECT url, reason, detail FROM frontier WHERE state IN ('skipped', 'failed')"
        )
        while batch := cur.fetchmany(1000):
            yield from batch

    # ------------------------------------------------------------------ export
    def documents(self, run_id: int, source: str) -> Iterator[dict[str, Any]]:
        """``DOCUMENTS`` rows of the pages stored or re-validated by ``run_id``, one per canonical URI."""
        cur = self.con.execute(
            "SELECT uri, status, content_type, title, text, sha256, depth, parent_uri, fetched_at, validated_at, "
            "etag, last_modified, url, n_apis FROM pages WHERE last_run = ? "
            "QUALIFY row_number() OVER (PARTITION BY uri ORDER BY depth, url) = 1 ORDER BY depth, uri",
            [run_id],
        )
        while batch := cur.fetchmany(500):
            for r in batch:
                yield {
                    "uri": r[0], "source": source, "status": r[1], "content_type": r[2], "title": r[3],
                    "text": r[4], "sha256": r[5], "depth": r[6], "parent_uri": r[7], "fetched_at": r[8],
                    "validated_at": r[9], "etag": r[10], "last_modified": r[11], "requested_uri": r[12],
                    "n_chars": len(r[4] or ""), "n_apis": r[13],
                }  # fmt: skip

    def api_rows(self, run_id: int) -> Iterator[dict[str, Any]]:
        """API rows of the run's pages: first occurrence of each ``api_id`` (pages in BFS order),
        ``function_name`` made unique within each provider."""
        cur = self.con.execute(
            "SELECT apis FROM pages WHERE last_run = ? AND n_apis > 0 "
            "QUALIFY row_number() OVER (PARTITION BY uri ORDER BY depth, url) = 1 ORDER BY depth, uri",
            [run_id],
        )
        seen_ids: set[str] = set()
        names: dict[str, set[str]] = {}
        while batch := cur.fetchmany(200):
            for (apis,) in batch:
                for row in json.loads(apis):
                    if row["api_id"] in seen_ids:
                        continue
                    seen_ids.add(row["api_id"])
                    name = unique_name(row["function_name"], names.setdefault(row["provider"], set()))
                    if name != row["function_name"]:
                        row["function_name"] = name
                        row["content_sha256"] = content_sha256(row)
                    row["fetched_at"] = datetime.fromisoformat(row["fetched_at"])
                    yield row

    # ------------------------------------------------------------------ helpers
    def _tx(self) -> _Tx:
        return _Tx(self.con)


class _Tx:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")
