"""The breadth-first crawl: frontier (DuckDB) -> safe fetcher -> extraction -> stored pages and APIs.

One process, one event loop. A dispatcher keeps up to ``max_concurrency`` fetches in flight,
takes queued URLs in (depth, discovery) order, and commits each outcome as it completes, so the
store is the only writer of its file and a kill loses at most the pages in flight. HTML parsing is
CPU-bound and runs inline or in a process pool (``extract_workers``, spawned workers that die
with this process). A page whose extraction raises, or whose worker dies twice, is a failed URL
with its reason (``extract_error`` / ``extract_worker_died``), never a stopped crawl. Typical use::

    cfg = CrawlConfig(seeds=("https://docs.python.org/3/",), max_depth=3)
    crawler = Crawler(cfg, "crawl.duckdb", api_rows=forge.sources.webdocs.signature_rows)
    summary = crawler.run()          # resumes an interrupted run, or starts the next (conditional) one
    crawler.export("out/")           # documents.parquet, web_docs.parquet, dropped.parquet
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from contracts.tables import API_OPERATIONS, DOCUMENTS, DROPPED_ROWS
from forge.core.io import sha256_text, write_parquet
from forge.core.parallel import worker_pool
from forge.core.stats import StepStats
from forge.crawler.config import CrawlConfig
from forge.crawler.extract import extract_page
from forge.crawler.fetcher import FetchResult, SafeFetcher
from forge.crawler.ssrf import AddressGuard
from forge.crawler.store import CrawlStore
from forge.crawler.urls import BadURL, normalize_url

#: Turns one page's API signatures (``PageExtract.signatures``) into ``raw.api_operations`` rows:
#: ``api_rows(signatures, *, page_uri, fetched_at, source, version, license)``. The crawler only
#: stores and exports what it returns; ``forge.sources.webdocs.signature_rows`` is the one in use.
#: A module-level function, so the extraction pool can pickle it.
ApiRows = Callable[..., Iterable[dict[str, Any]]]


def extract_for_store(html: str, url: str, api_rows: ApiRows | None, source: str, version: str, license: str,
                      fetched_at: str) -> dict[str, Any]:  # fmt: skip
    """Parse one page into what the store keeps (module-level so a process pool can run it).
    Without ``api_rows`` no signatures are extracted and the page has no API rows."""
    page = extract_page(html, url, with_apis=api_rows is not None)
    rows = []
    if api_rows is not None:
        rows = list(
            api_rows(
                page.signatures,
                page_uri=url,
                fetched_at=datetime.fromisoformat(fetched_at),
                source=source,
                version=version,
                license=license,
            )  # fmt: skip
        )
    for r in rows:
        r["fetched_at"] = fetched_at
    return {
        "text": page.text, "title": page.title, "links": page.links, "canonical": page.canonical,
        "noindex": page.noindex, "apis": json.dumps(rows), "n_apis": len(rows),
    }  # fmt: skip


class _WorkerDied(RuntimeError):
    """The extraction worker died on a page twice (killed, out of memory, a crash in C code)."""


class _ExtractPool:
    """The extraction process pool of one run, rebuilt when a worker dies: the page whose worker
    died is tried once more in the new pool, then failed (``extract_worker_died``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor = worker_pool(workers)

    async def extract(self, args: tuple[Any, ...]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            pool = self.pool
            try:
                return await loop.run_in_executor(pool, extract_for_store, *args)
            except BrokenProcessPool as exc:
                if self.pool is pool:  # the first page to notice rebuilds it; the others reuse it
                    pool.shutdown(wait=False, cancel_futures=True)
                    self.pool = worker_pool(self.workers)
                if attempt == 1:
                    raise _WorkerDied(f"extraction worker died twice: {exc}") from None
        raise AssertionError("unreachable")

    def shutdown(self, cancel_futures: bool = True) -> None:
        self.pool.shutdown(cancel_futures=cancel_futures)


class Crawler:
    """A resumable, polite crawl over a DuckDB state file (see the module docstring)."""

    def __init__(
        self,
        config: CrawlConfig,
        db_path: str | Path,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        guard: AddressGuard | None = None,
        api_rows: ApiRows | None = None,
    ) -> None:
        """``api_rows`` turns a page's API signatures into rows (see ``ApiRows``); without it, or
        with ``config.extract_apis`` off, pages are stored without API rows."""
        self.config = config
        self.api_rows = api_rows if config.extract_apis else None
        self.store = CrawlStore(db_path)
        self.transport = transport
        self.guard = guard
        self.run_id: int | None = None

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Crawler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ run
    def run(self, stop_after: int | None = None, progress: Any = None) -> dict[str, Any]:
        """Crawl until the frontier or the page budget is exhausted; return the summary.

        ``stop_after`` ends the run after that many committed URLs *without* finishing it (what a
        kill does), so the next ``run`` resumes. ``progress`` (a tqdm-like object) gets ``update(1)``.
        """
        return asyncio.run(self._run(stop_after, progress))

    async def _run(self, stop_after: int | None, progress: Any) -> dict[str, Any]:
        cfg = self.config
        seeds, bad = [], Counter()
        for s in cfg.seeds:
            try:
                seeds.append(normalize_url(s))
            except BadURL:
                bad["bad_seed_url"] += 1
        self.run_id, resumed = self.store.begin_run(seeds, cfg.as_dict())
        run_id = self.run_id
        self.store.add_counters(run_id, bad)
        fetched = self.store.counters(run_id).get("pages_fetched", 0)
        t0, cpu0 = time.perf_counter(), time.process_time()
        events: Counter = Counter()
        pool = _ExtractPool(cfg.extract_workers) if cfg.extract_workers > 0 else None
        tasks: dict[asyncio.Task, str] = {}
        committed, stopped = 0, False
        try:
            async with SafeFetcher(cfg, guard=self.guard, transport=self.transport, events=events) as fetcher:
                while True:
                    room = min(cfg.max_concurrency - len(tasks), cfg.max_pages - fetched - len(tasks))
                    if not stopped and room > 0:
                        for url, depth, parent in self.store.claim(room, tasks.values()):
                            task = asyncio.create_task(self._process(fetcher, pool, url, depth, parent))
                            tasks[task] = url
                    if not tasks:
                        break
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        del tasks[task]
                        outcome = task.result()
                        fetched += outcome.pop("fetched")
                        self._commit(run_id, outcome, events)
                        events.clear()
                        committed += 1
                        if progress is not None:
                            progress.update(1)
                    if stop_after is not None and committed >= stop_after:
                        stopped = True
                        for task in tasks:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)
                        tasks.clear()
                        break
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if not stopped:
            self.store.finish_run(run_id)
        return self.summary(
            resumed=resumed, stopped=stopped, elapsed_s=time.perf_counter() - t0,
            cpu_s=time.process_time() - cpu0, committed=committed,
        )  # fmt: skip

    def _commit(self, run_id: int, o: dict[str, Any], events: Counter) -> None:
        counters = Counter(events)
        counters.update(o.pop("counters"))
        self.store.complete(run_id, counters=counters, **o)

    async def _process(self, fetcher: SafeFetcher, pool: _ExtractPool | None, url: str, depth: int,
                       parent: str | None) -> dict[str, Any]:  # fmt: skip
        """Fetch and extract one URL; return the keyword arguments of ``CrawlStore.complete``."""
        cfg = self.config
        prev = self.store.page(url)
        counters: Counter = Counter()
        out: dict[str, Any] = {"url": url, "state": "done", "reason": None, "counters": counters, "fetched": 0,
                               "link_depth": depth + 1}  # fmt: skip

        def refuse_redirect(target: str) -> str | None:
            return None if cfg.in_scope(target) else "redirect_out_of_scope"

        res: FetchResult = await fetcher.fetch(
            url,
            etag=prev["etag"] if prev else None,
            last_modified=prev["last_modified"] if prev else None,
            allow_redirect=refuse_redirect,
        )
        out["fetched"] = int(res.n_attempts > 0)
        counters["pages_fetched"] += out["fetched"]
        if not res.ok:
            out.update(state="failed" if res.n_attempts else "skipped", reason=res.reason, detail=res.detail)
            return out
        now = datetime.now(UTC)
        if res.not_modified:
            if prev is None:
                out.update(state="failed", reason="http_304_without_cache", detail=url)
                return out
            counters["not_modified"] += 1
            page = dict(prev) | {
                "validated_at": now,
                "last_run": self.run_id,
                "depth": depth,
                "parent_uri": parent,
            }
            out.update(page=page, reason="not_modified")
            self._add_links(out, list(prev["links"] or []), depth)
            return out
        counters["pages_downloaded"] += 1
        fetched_at = now.isoformat()
        args = (
            res.text or "",
            res.final_url,
            self.api_rows,
            cfg.source,
            cfg.api_version,
            cfg.license,
            fetched_at,
        )
        try:
            ex = await pool.extract(args) if pool is not None else extract_for_store(*args)
        except _WorkerDied as exc:
            out.update(state="failed", reason="extract_worker_died", detail=f"{url}: {exc}")
            return out
        except Exception as exc:  # malformed HTML that breaks the parser: this page's failure only
            out.update(
                state="failed",
                reason="extract_error",
                detail=f"{url}: {type(exc).__name__}: {str(exc)[:200]}",
            )
            return out
        self._add_links(out, ex["links"], depth)
        uri = res.final_url
        if ex["canonical"] and ex["canonical"] != uri and cfg.in_scope(ex["canonical"]):
            uri = ex["canonical"]
            counters["canonical_followed"] += 1
        if uri != url:
            out["also_done"] = [uri]
            if self.store.stored_elsewhere(uri, url, self.run_id or 0):
                out.update(state="skipped", reason="duplicate_of_stored", detail=f"{url} -> {uri}")
                return out
        if ex["noindex"]:
            out.update(state="skipped", reason="noindex", detail=url)
            return out
        if not ex["text"] and not ex["n_apis"]:
            out.update(state="skipped", reason="empty_text", detail=url)
            return out
        counters["apis_extracted"] += ex["n_apis"]
        out["page"] = {
            "url": url, "uri": uri, "status": res.status, "content_type": res.content_type, "title": ex["title"],
            "text": ex["text"], "sha256": sha256_text(ex["text"]), "depth": depth, "parent_uri": parent,
            "fetched_at": now, "validated_at": now, "etag": res.etag, "last_modified": res.last_modified,
            "links": ex["links"], "apis": ex["apis"], "n_apis": ex["n_apis"], "last_run": self.run_id,
        }  # fmt: skip
        return out

    def _add_links(self, out: dict[str, Any], links: list[str], depth: int) -> None:
        if depth + 1 > self.config.max_depth:
            out["counters"]["links_beyond_max_depth"] += len(links)
            return
        inside = [u for u in links if self.config.in_scope(u)]
        out["links"] = inside
        outside = [u for u in links if not self.config.in_scope(u)]
        if outside:
            out["skipped_links"] = {"out_of_scope": outside}

    # ------------------------------------------------------------------ results
    def summary(self, **extra: Any) -> dict[str, Any]:
        """Counts of the current run: fetched, stored, not modified, skipped by reason, events."""
        run_id = self.run_id if self.run_id is not None else self.store.latest_run()
        counters = self.store.counters(run_id) if run_id is not None else {}
        reasons = self.store.reasons()
        n_docs = self.store.con.execute(
            "SELECT count(DISTINCT uri), coalesce(sum(n_apis), 0) FROM pages WHERE last_run = ?", [run_id]
        ).fetchone()
        out = {
            "run_id": run_id,
            "pages_fetched": counters.get("pages_fetched", 0),
            "pages_downloaded": counters.get("pages_downloaded", 0),
            "not_modified": counters.get("not_modified", 0),
            "pages_stored": int(n_docs[0]),
            "api_signatures": int(n_docs[1]),
            "skipped_by_reason": reasons,
            "queued_left": self.store.n_queued(),
            "events": {k: v for k, v in counters.items() if k not in ("pages_fetched", "pages_downloaded")},
        }
        out.update(extra)
        if extra.get("elapsed_s"):
            out["pages_per_s"] = round(extra.get("committed", 0) / extra["elapsed_s"], 2)
        return out

    def stats(self) -> StepStats:
        """The run as a ``StepStats`` (kept = pages stored, dropped = skipped URLs by reason)."""
        st = StepStats(f"crawl_{self.config.source}")
        summary = self.summary()
        st.keep(summary["pages_stored"])
        for url, reason, detail in self.store.skipped():
            st.drop(reason or "unknown", f"{url} {detail or ''}".strip())
        return st

    def export(self, out_dir: str | Path) -> dict[str, int]:
        """Write ``documents.parquet`` (DOCUMENTS), ``<source>.parquet`` (API_OPERATIONS) and
        ``dropped.parquet`` (DROPPED_ROWS) of the latest run, atomically; return row counts."""
        out_dir = Path(out_dir)
        run_id = self.run_id if self.run_id is not None else self.store.latest_run()
        if run_id is None:
            raise RuntimeError(f"no crawl run in {self.store.path}")
        src = self.config.source
        n_docs = write_parquet(out_dir / "documents.parquet", self.store.documents(run_id, src), DOCUMENTS)
        n_apis = write_parquet(out_dir / f"{src}.parquet", self.store.api_rows(run_id), API_OPERATIONS)
        dropped = (
            {"asset": f"crawl_{src}", "reason": r, "detail": d, "source_uri": u}
            for u, r, d in self.store.skipped()
        )
        n_dropped = write_parquet(out_dir / "dropped.parquet", dropped, DROPPED_ROWS)
        return {"documents": n_docs, "api_operations": n_apis, "dropped": n_dropped}


def crawl_and_export(
    config: CrawlConfig, db_path: str | Path, out_dir: str | Path, *, api_rows: ApiRows | None = None
) -> dict[str, Any]:
    """One call for an asset or the CLI: run (or resume) the crawl, export its Parquet files, and
    return the summary (with ``exported`` row counts) for metadata. ``api_rows``: see ``Crawler``."""
    with Crawler(config, db_path, api_rows=api_rows) as crawler:
        summary = crawler.run()
        summary["exported"] = crawler.export(out_dir)
    return summary
