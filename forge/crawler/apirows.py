"""Signatures collected from documentation pages -> ``raw.api_operations`` rows (``source="web_docs"``).

Grain: one row per documented callable (``json.dumps``, ``json.JSONDecoder.decode``, the
``json.JSONDecoder`` constructor). Parameter types come from the annotation when the page shows
one, else from the default's literal type; a page gives no types at all for most stdlib
functions, and then the schema says nothing rather than guessing.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from forge.core.ids import api_id, content_sha256, sanitize_function_name

_ANNOTATION_TYPES = {
    "int": "integer",
    "float": "number",
    "complex": "number",
    "str": "string",
    "bytes": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "frozenset": "array",
    "dict": "object",
    "None": "null",
}
_LITERAL_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", bytes: "string",
                  list: "array", tuple: "array", dict: "object", set: "array"}  # fmt: skip


def _annotation_schema(annotation: str) -> dict[str, Any]:
    alternatives = [a.strip() for a in annotation.replace("Optional[", "").rstrip("]").split("|")]
    types = []
    for alt in alternatives:
        base = alt.split("[", 1)[0].rsplit(".", 1)[-1]
        t = _ANNOTATION_TYPES.get(base) or _ANNOTATION_TYPES.get(base.lower())
        if t is None:
            return {"description": f"type: {annotation}"}
        if t not in types:
            types.append(t)
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    return schema


def param_schema(param: dict[str, Any], doc: str | None = None) -> dict[str, Any]:
    """JSON Schema of one documented parameter (see ``apidocs.parse_param`` for its keys)."""
    if param["kind"] == "var_positional":
        schema: dict[str, Any] = {
            "type": "array",
            "description": f"extra positional arguments (*{param['name']})",
        }
    elif param["kind"] == "var_keyword":
        schema = {"type": "object", "description": f"extra keyword arguments (**{param['name']})"}
    elif param.get("annotation"):
        schema = _annotation_schema(param["annotation"])
    else:
        schema = {}
    default = param.get("default")
    if default is not None:
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            schema["description"] = (schema.get("description", "") + f" (default: {default})").strip()
        else:
            if isinstance(value, (bytes, set, frozenset, complex)):
                value = repr(value)
            schema["default"] = value
            if "type" not in schema and type(value) in _LITERAL_TYPES:
                schema["type"] = _LITERAL_TYPES[type(value)]
    if doc:
        schema["description"] = (doc + " " + schema.get("description", "")).strip()
    return schema


def signature_rows(
    signatures: Iterable[dict[str, Any]],
    *,
    page_uri: str,
    fetched_at: datetime,
    source: str = "web_docs",
    version: str = "",
    license: str = "unknown",
) -> Iterator[dict[str, Any]]:
    """API_OPERATIONS rows of one page's signatures. ``function_name`` is made unique later, per
    provider, when rows of all pages are exported (``forge.crawler.store``)."""
    for sig in signatures:
        qualname = sig["qualname"]
        module = sig.get("module") or qualname.rpartition(".")[0] or qualname
        provider = module.split(".")[0]
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in sig["params"]:
            props[p["name"]] = param_schema(p, sig.get("param_docs", {}).get(p["name"]))
            if (
                p["default"] is None
                and not p["optional"]
                and p["kind"] not in ("var_positional", "var_keyword")
            ):
                required.append(p["name"])
        row: dict[str, Any] = {
            "api_id": api_id(source, provider, module, version, sig["kind"], qualname),
            "source": source,
            "provider": provider,
            "api_name": module,
            "version": version,
            "function_name": sanitize_function_name(qualname),
            "method": sig["kind"],
            "path": qualname,
            "summary": sig.get("summary"),
            "description": sig.get("description"),
            "parameters": json.dumps(
                {"type": "object", "properties": props, "required": required}, sort_keys=True
            ),
            "responses": json.dumps({"return": {}}),
            "tags": json.dumps([module, f"doc_style:{sig.get('style', 'sphinx')}"]),
            "source_uri": page_uri,
            "license": license,
            "fetched_at": fetched_at,
        }
        row["content_sha256"] = content_sha256(row)
        yield row
