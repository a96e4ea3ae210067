"""Documentation sites -> ``raw.documents`` and ``raw.web_docs_operations``: the crawl as a stage.

Every configured crawl runs one after another. A crawl with ``serve_dir`` serves that local folder
on 127.0.0.1 for its duration (a documentation tree on disk, e.g. Debian's python3.11-doc, or a
fixture site) and crawls it through the same polite, SSRF-guarded fetcher as any remote site; only
that address is allow-listed. The crawl state (the frontier, stored pages, validators) lives in
``state_dir`` and persists between runs, so a killed crawl resumes and a rebuild re-fetches with
ETag / Last-Modified.

The API signatures a page documents become rows here (``signature_rows``; the crawler calls it
for every page it extracts). Grain: one row per documented callable (``json.dumps``,
``json.JSONDecoder.decode``, the ``json.JSONDecoder`` constructor). Parameter types come from the
annotation when the page shows one, else from the default's literal type; a page gives no types
at all for most stdlib functions, and then the schema says nothing rather than guessing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, model_validator

from contracts.tables import API_OPERATIONS, DOCUMENTS, api_operation_row
from forge.core.ids import sanitize_function_name
from forge.core.io import write_parquet
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.crawler import CrawlConfig, crawl_and_export
from forge.sources.python.signatures import text_param_schema


def signature_rows(
    signatures: Iterable[dict[str, Any]],
    *,
    page_uri: str,
    fetched_at: datetime,
    source: str = "web_docs",
    version: str = "",
    license: str = "unknown",
) -> Iterator[dict[str, Any]]:
    """API_OPERATIONS rows of one page's signatures (``forge.crawler.apidocs``). ``function_name``
    is made unique later, per provider, when rows of all pages are exported (``forge.crawler.store``)."""
    for sig in signatures:
        qualname = sig["qualname"]
        module = sig.get("module") or qualname.rpartition(".")[0] or qualname
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in sig["params"]:
            props[p["name"]] = text_param_schema(p, sig.get("param_docs", {}).get(p["name"]))
            if (
                p["default"] is None
                and not p["optional"]
                and p["kind"] not in ("var_positional", "var_keyword")
            ):
                required.append(p["name"])
        yield api_operation_row(
            source=source,
            provider=module.split(".")[0],
            api_name=module,
            version=version,
            method=sig["kind"],
            path=qualname,
            function_name=sanitize_function_name(qualname),
            summary=sig.get("summary"),
            description=sig.get("description"),
            parameters={"type": "object", "properties": props, "required": required},
            responses={"return": {}},
            tags=[module, f"doc_style:{sig.get('style', 'sphinx')}"],
            source_uri=page_uri,
            license=license,
            fetched_at=fetched_at,
        )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def stable_port(name: str) -> int:
    """A port derived from the crawl's name, so page URLs (and the API ids made from them) stay the
    same between runs and the crawl state's validators keep working."""
    return 20_000 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 30_000


@contextmanager
def serve_directory(root: Path, port: int = 0) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 while the block runs (``port``, or any free one when it is taken);
    yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _crawl_one(spec: dict[str, Any], base_url: str | None, state_dir: Path, work: Path) -> dict[str, Any]:
    cfg = {k: v for k, v in spec.items() if k not in ("name", "serve_dir", "skip_if_missing")}
    if base_url is not None:
        cfg["seeds"] = [base_url + s.lstrip("/") for s in cfg.get("seeds", ["index.html"])]
        cfg["allow_addresses"] = ["127.0.0.1"]
        cfg.setdefault("min_delay_s", 0.0)
    return crawl_and_export(
        CrawlConfig.from_mapping(cfg), state_dir / f"{spec['name']}.duckdb", work, api_rows=signature_rows
    )


def crawl_documentation(
    crawls: list[dict[str, Any]], *, state_dir: Path, documents_dir: Path, apis_dir: Path
) -> dict[str, Any]:
    """Run each crawl; write ``documents_dir/<name>.parquet`` (raw.documents) and
    ``apis_dir/<name>.parquet`` (API rows with source web_docs). Returns per-crawl summaries."""
    stats = StepStats("crawls")
    summaries: dict[str, Any] = {}
    state_dir.mkdir(parents=True, exist_ok=True)
    keep: set[str] = set()
    for spec in crawls:
        name = spec["name"]
        serve = spec.get("serve_dir")
        if serve and not Path(serve).is_dir():
            stats.drop("serve_dir_missing", f"{name}: {serve}")
            continue
        documents_dir.parent.mkdir(parents=True, exist_ok=True)
        # staged beside the outputs (same filesystem): the moves below are atomic renames
        with tempfile.TemporaryDirectory(prefix=f".crawl-{name}-", dir=documents_dir.parent) as tmp:
            work = Path(tmp)
            if serve:
                with serve_directory(Path(serve), stable_port(name)) as base:
                    summary = _crawl_one(spec, base, state_dir, work)
            else:
                summary = _crawl_one(spec, None, state_dir, work)
            source = spec.get("source", "web_docs")
            for src, dst in (
                (work / "documents.parquet", documents_dir),
                (work / f"{source}.parquet", apis_dir),
            ):
                dst.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), dst / f"{name}.parquet")
        keep.add(f"{name}.parquet")
        stats.keep()
        summaries[name] = summary
    for directory, schema in ((documents_dir, DOCUMENTS), (apis_dir, API_OPERATIONS)):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.parquet"):
            if stale.name not in keep and stale.name != "_empty.parquet":
                stale.unlink()
        if not keep:  # dbt reads a glob: leave a readable empty table
            write_parquet(directory / "_empty.parquet", [], schema)
        else:
            (directory / "_empty.parquet").unlink(missing_ok=True)
    rows = [
        (n, reason, k) for n, s in summaries.items() for reason, k in s.get("skipped_by_reason", {}).items()
    ]
    rows += [("(crawl)", reason, k) for reason, k in stats.dropped.items()]
    table = [
        "| crawl | reason | n |",
        "|---|---|---:|",
        *(f"| {n} | {r} | {k} |" for n, r, k in sorted(rows)),
    ]
    return {
        "n_crawls": len(summaries),
        "n_pages": sum(int(s.get("pages_stored", 0)) for s in summaries.values()),
        "n_api_signatures": sum(int(s.get("api_signatures", 0)) for s in summaries.values()),
        "skipped": dict(stats.dropped),
        "skipped_md": "\n".join(table) if rows else "_nothing skipped_",
        "crawls": {
            n: {k: v for k, v in s.items() if isinstance(v, int | float | str | dict)}
            for n, s in summaries.items()
        },
    }


class CrawlSpec(StageConfig):
    """One entry of the profile's ``sources.crawl``: a name, optionally a local folder to serve, and
    :class:`forge.crawler.CrawlConfig` settings (checked by name there; their defaults live there)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    #: names the output files and the crawl's state database
    name: str
    #: a local documentation tree served on 127.0.0.1 for the crawl (``python3.11-doc``: Debian's)
    serve_dir: str | None = None

    @model_validator(mode="after")
    def _known_crawl_settings(self) -> CrawlSpec:
        known = {f.name for f in dataclasses.fields(CrawlConfig) if f.init}
        unknown = sorted(set(self.model_extra or {}) - known)
        if unknown:
            raise ValueError("; ".join(f"unknown key {key!r}" for key in unknown))
        return self

    def as_spec(self) -> dict[str, Any]:
        """The plain spec :func:`crawl_documentation` reads."""
        return self.model_dump(exclude_none=True)


class CrawlStageConfig(StageConfig):
    """Every configured crawl, run one after another."""

    crawls: list[CrawlSpec] = []


def run_crawls(cfg: CrawlStageConfig, *, out_dir: Path, apis_dir: Path, state_dir: Path) -> dict[str, Any]:
    """:func:`crawl_documentation` as a stage: pages to ``out_dir`` (raw.documents), API rows to
    ``apis_dir`` (raw.web_docs_operations), the crawl state kept in ``state_dir``."""
    return crawl_documentation(
        [spec.as_spec() for spec in cfg.crawls], state_dir=state_dir, documents_dir=out_dir, apis_dir=apis_dir
    )


CRAWL_STAGE = Stage("web_docs_crawl", CrawlStageConfig, run_crawls)
