"""What every Python asset does around its library call: skip when nothing changed, report.

An asset's fingerprint folds in its configuration, its upstream fingerprints and the digest of
the library code it calls. When the output's completion marker holds the same fingerprint the
work is skipped and the asset says so ("up_to_date"); the fingerprint is also the asset's Dagster
data version, so the UI's staleness view agrees with what a rerun would do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue

from forge.core.io import atomic_write_text
from forge.core.markers import is_fresh, read_marker, withdraw_marker, write_marker


def to_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata from a plain dict: scalars as they are, '*_md' keys as Markdown, the rest JSON."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key.endswith("_md") and isinstance(value, str):
            out[key] = MetadataValue.md(value)
        elif isinstance(value, bool | int | float | str) or value is None:
            out[key] = value
        else:
            out[key] = MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return out


def up_to_date_result(
    context: AssetExecutionContext, out_dir: Path, fingerprint: str
) -> MaterializeResult | None:
    """The skip path: when ``out_dir`` is fresh for ``fingerprint``, the result that says so."""
    if not is_fresh(out_dir, fingerprint):
        return None
    meta = (read_marker(out_dir) or {}).get("metadata", {})
    label = ", ".join(sorted(k.to_user_string() for k in context.selected_asset_keys))
    context.log.info(f"{label}: up to date (fingerprint {fingerprint}); skipped")
    return MaterializeResult(
        metadata=to_metadata({**meta, "up_to_date": True, "fingerprint": fingerprint}),
        data_version=DataVersion(fingerprint),
    )


def finished_result(out_dir: Path, fingerprint: str, meta: dict[str, Any]) -> MaterializeResult:
    """Write the completion marker (last, atomically) and report a fresh materialization."""
    write_marker(out_dir, fingerprint, meta)
    return MaterializeResult(
        metadata=to_metadata({**meta, "up_to_date": False, "fingerprint": fingerprint}),
        data_version=DataVersion(fingerprint),
    )


def start_mlflow_run(
    context: AssetExecutionContext,
    profile,
    mlflow,
    run_name: str,
    parent_run_id: str | None = None,
    **tags: str,
) -> tuple[str, str]:
    """Create this materialization's MLflow run, tagged with the Dagster run id and asset key
    (nested under ``parent_run_id`` when given); return ``(tracking_uri, run_id)``."""
    from assets.tracking import create_run, ensure_experiment

    uri, experiment = mlflow.resolve(profile)
    exp_id = ensure_experiment(uri, experiment, profile.paths.artifact_root)
    all_tags = {
        "dagster.run_id": context.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "hephaestus.profile": profile.paths.profile,
        **{f"hephaestus.{k}": str(v) for k, v in tags.items()},
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    return uri, create_run(uri, exp_id, run_name, tags=all_tags)


def materialize_stage(
    context: AssetExecutionContext,
    out_dir: Path,
    fingerprint: str,
    build: Callable[[], dict[str, Any]],
) -> MaterializeResult:
    """Run ``build`` (which writes ``out_dir``) unless ``out_dir`` is fresh for ``fingerprint``; the
    stale marker is withdrawn first, so a build killed halfway leaves "not done", not the old claim."""
    skipped = up_to_date_result(context, out_dir, fingerprint)
    if skipped is not None:
        return skipped
    withdraw_marker(out_dir)
    return finished_result(out_dir, fingerprint, build())


#: the fingerprint of the inputs whose resumable work a directory holds
RUN_FINGERPRINT = "_RUN_FINGERPRINT"


def start_fresh_unless_resuming(work_dir: Path, fingerprint: str) -> None:
    """Prepare ``work_dir`` for resumable work (checkpoints, finished grid runs) of ``fingerprint``'s
    inputs: its marker is withdrawn; work left by a killed run of the same inputs is kept, to be
    resumed; work of other inputs is removed, never resumed into the new output."""
    withdraw_marker(work_dir)
    stamp = work_dir / RUN_FINGERPRINT
    if work_dir.exists() and (not stamp.exists() or stamp.read_text().strip() != fingerprint):
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, fingerprint)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_(empty)_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def png_markdown(path: Path | None, alt: str) -> str:
    """A PNG as Markdown with the image inlined (base64 data URI): the Dagster UI renders it in the
    asset's metadata, and the completion marker keeps it, so a skipped rerun still shows it."""
    import base64

    if path is None or not path.exists():
        return f"_no {alt}_"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{data})"
