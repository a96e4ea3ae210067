"""Fuzzing the OpenAPI entrance: bytes -> ``accept_spec`` -> ``parse_spec`` never raises, never hangs.

Documents are drawn from OpenAPI's own vocabulary (paths, parameters, ``$ref``s that point at real,
missing or cyclic targets, enums, every field with a value of any type), serialized as JSON or YAML
(with anchors and aliases), or are arbitrary bytes. The property: loading returns a spec or a named
skip, and parsing yields valid rows (each with its defects) — the ingest's own error handling, never
an uncaught exception.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import yaml
from hypothesis import given
from hypothesis import strategies as st

from contracts.tables import API_OPERATIONS
from forge.core.stats import StepStats
from forge.sources.openapi.directory import SpecBounds, accept_spec, document_depth
from forge.sources.openapi.parse import parse_spec
from tests.fuzz.fuzzing import bounded

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = [
    "openapi", "swagger", "info", "title", "version", "paths", "get", "post", "put", "parameters", "name",
    "in", "schema", "type", "properties", "required", "items", "enum", "$ref", "requestBody", "content",
    "application/json", "responses", "200", "default", "components", "schemas", "definitions", "allOf",
    "oneOf", "servers", "url", "security", "securitySchemes", "operationId", "description", "tags", "/a/{id}",
]  # fmt: skip
REFS = ["#/components/schemas/A", "#/components/schemas/Missing", "#/definitions/A", "#/", "#/paths",
        "#/components/parameters/P", "other.yaml#/X", "#/components/schemas/A/properties/self", "#"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.sampled_from(["string", "object", "array", "integer", "query", "path", "querry", "header", "body"]),
    st.text(max_size=40), st.sampled_from(REFS),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
        st.builds(lambda r: {"$ref": r}, st.sampled_from(REFS)),
    ),
    max_leaves=60,
)


@st.composite
def documents(draw: st.DrawFn) -> dict:
    """An OpenAPI-shaped document whose every part may be of the wrong type."""
    doc = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=5))
    doc[draw(st.sampled_from(["openapi", "swagger"]))] = draw(st.sampled_from(["3.0.0", "2.0", 3, None]))
    doc["paths"] = draw(
        st.one_of(values, st.dictionaries(st.sampled_from(KEYS[-1:] + ["/b", "x-ext"]), values))
    )
    doc["components"] = {"schemas": {"A": draw(values)}, "parameters": {"P": draw(values)}}
    return doc


def _parse_all(spec: dict) -> list[dict]:
    stats = StepStats("fuzz")
    rows = list(
        parse_spec(spec, "fuzz.example", "mem://fuzz", WHEN, stats, max_operations=500, time_limit_s=5)
    )
    pa.RecordBatch.from_pylist(rows, schema=API_OPERATIONS)  # every row fits the table's schema
    for row in rows:
        assert isinstance(json.loads(row["defects"]), list)
    return rows


@given(documents())
def test_documents_as_json_load_and_parse(doc: dict) -> None:
    data = json.dumps(doc).encode()
    spec, problem = bounded("openapi_json_documents", accept_spec, "fuzz.json", data, None)
    assert (spec is None) != (problem is None)
    if spec is not None:
        bounded("openapi_parse_spec", _parse_all, spec)


@given(documents())
def test_documents_as_yaml_load_and_parse(doc: dict) -> None:
    data = yaml.safe_dump(doc).encode()
    spec, problem = bounded("openapi_yaml_documents", accept_spec, "fuzz.yaml", data, None)
    if spec is not None:
        bounded("openapi_parse_spec", _parse_all, spec)


@given(st.binary(max_size=2000), st.sampled_from(["x.json", "x.yaml"]))
def test_arbitrary_bytes_are_a_named_skip_or_a_spec(data: bytes, name: str) -> None:
    spec, problem = bounded("openapi_arbitrary_bytes", accept_spec, name, data, None)
    assert spec is not None or problem[0] in {
        "malformed_spec", "not_an_openapi_document", "max_depth", "max_file_bytes",
    }  # fmt: skip


@given(st.integers(1, 4000), st.sampled_from("[{"), st.sampled_from(["x.json", "x.yaml"]))
def test_deep_nesting_is_max_depth_not_a_recursion_error(depth: int, bracket: str, name: str) -> None:
    close = "]" if bracket == "[" else "}"
    inner = (bracket + ('"k":' if bracket == "{" else "")) * depth + "1" + close * depth
    data = f'{{"openapi": "3.0.0", "paths": {{"/a": {{"get": {{"x": {inner}}}}}}}}}'.encode()
    bounds = SpecBounds(max_depth=100)
    spec, problem = bounded("openapi_deep_nesting", accept_spec, name, data, None, bounds)
    if depth + 4 > bounds.max_depth:
        assert problem is not None and problem[0] in {"max_depth", "malformed_spec"}
    else:
        assert spec is not None and document_depth(spec, 1000) == depth + 4


@given(st.integers(2, 12), st.integers(2, 12))
def test_yaml_alias_bombs_stay_small(width: int, levels: int) -> None:
    lines = [
        "openapi: 3.0.0",
        "info: {title: bomb, version: '1'}",
        "l0: &l0 [" + ",".join(['"x"'] * width) + "]",
    ]
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    lines.append(f"paths: {{/b: {{get: {{parameters: *l{levels - 1}, x-y: *l{levels - 1}}}}}}}")
    spec, problem = bounded("openapi_yaml_bombs", accept_spec, "bomb.yaml", "\n".join(lines).encode(), None)
    if spec is not None:
        rows = bounded("openapi_parse_spec", _parse_all, spec)
        assert len(rows) == 1


@given(st.lists(st.sampled_from(REFS[:6]), min_size=1, max_size=8), st.booleans())
def test_ref_cycles_and_dangling_chains(chain: list[str], close_cycle: bool) -> None:
    """Schemas A0 -> A1 -> ... each a ref to the next; the last to a drawn target or back to A0."""
    schemas = {f"A{i}": {"$ref": f"#/components/schemas/A{i + 1}"} for i in range(len(chain))}
    schemas[f"A{len(chain)}"] = {"$ref": "#/components/schemas/A0" if close_cycle else chain[-1]}
    param = {"name": "p", "in": "query", "schema": {"$ref": "#/components/schemas/A0"}}
    op = {"parameters": [param], "requestBody": {"$ref": chain[0]}, "responses": {"200": {"$ref": chain[-1]}}}
    doc = {"openapi": "3.0.0", "components": {"schemas": schemas}, "paths": {"/r": {"post": op}}}
    (row,) = bounded("openapi_ref_chains", _parse_all, doc)
    if close_cycle:  # the cycle is cut, by recursion or by the ref-depth budget, never followed forever
        assert "x-recursive-ref" in row["parameters"] or "x-truncated-ref" in row["parameters"]
