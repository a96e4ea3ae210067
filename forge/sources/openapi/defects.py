"""Spec defects of one operation: what the spec leaves undefined or invalid in its arguments.

An operation with a defect is kept (a model may still read it), but its row says what is wrong
(``defects``: a JSON list of ``{"reason", "detail"}``) and synthesis never counts a call as
validated against it. Reasons: ``unresolved_ref`` (a ``$ref`` to nowhere, or to another file),
``parameter_bad_location`` (``in:`` not path/query/header/cookie/body/formData),
``parameter_invalid`` (no string ``name``/``in``), ``parameters_not_a_list``, ``schema_invalid``.
"""

from __future__ import annotations

from typing import Any

#: Most defects recorded per operation (the count of each kind is kept in the stats notes).
MAX_DEFECTS = 20


def add_defect(defects: list[dict[str, str]] | None, reason: str, detail: str) -> None:
    """Record one spec defect of an operation (kept in its row: a model may still read the
    operation, but a call cannot be validated against what the spec left undefined)."""
    if defects is not None and len(defects) < MAX_DEFECTS:
        defects.append({"reason": reason, "detail": detail[:200]})


#: JSON Schema's type names (``type`` outside these is a schema error).
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


def schema_defects(arguments: dict[str, Any], defects: list[dict[str, str]]) -> None:
    """Cheap structural checks of a resolved arguments schema and its properties (one level):
    unresolved refs anywhere, and keywords of the wrong type (``type``, ``required``,
    ``properties``, ``enum``, ``items``). A full meta-schema check per operation would cost more
    than the whole ingest; the synthesis executor runs that one, where calls are validated."""
    for ref in sorted(_unresolved_refs(arguments)):
        add_defect(defects, "unresolved_ref", ref)
    props = arguments.get("properties")
    for name, schema in props.items() if isinstance(props, dict) else ():
        if not isinstance(schema, dict):
            add_defect(
                defects, "schema_invalid", f"{name}: a schema must be an object, not {type(schema).__name__}"
            )
            continue
        problem = _keyword_problem(schema)
        if problem:
            add_defect(defects, "schema_invalid", f"{name}: {problem}")


def _keyword_problem(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kind is not None and not all(isinstance(k, str) and k in JSON_TYPES for k in kinds):
        return f"type {str(kind)[:60]!r} is not a JSON Schema type"
    if "required" in schema and not (
        isinstance(schema["required"], list) and all(isinstance(r, str) for r in schema["required"])
    ):
        return "required must be a list of names"
    if "properties" in schema and not isinstance(schema["properties"], dict):
        return "properties must be an object"
    if "enum" in schema and not isinstance(schema["enum"], list):
        return "enum must be a list"
    if "items" in schema and not isinstance(schema["items"], dict | bool | list):
        return "items must be a schema"
    return None


def _unresolved_refs(node: Any, limit: int = MAX_DEFECTS) -> set[str]:
    """The ``x-unresolved-ref`` / ``x-external-ref`` targets left in a resolved schema (iterative;
    resolved schemas are bounded by the resolver's node budget)."""
    found: set[str] = set()
    stack = [node]
    while stack and len(found) < limit:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key in ("x-unresolved-ref", "x-external-ref"):
                if isinstance(cur.get(key), str):
                    found.add(cur[key])
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return found
