"""Stable identifiers and tool names shared by the API ingesters (OpenAPI, Python modules).

An ``api_id`` must not change between runs or machines: it is derived only from what identifies
the operation (source, provider, API, version, method, path), never from where the file was
cached or when it was read. ``content_sha256`` changes when what a model would read changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

#: The longest tool name we emit (OpenAI-style function names allow 64 characters).
MAX_FUNCTION_NAME = 64

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

_INVALID = re.compile(r"[^A-Za-z0-9_.]+")


def api_id(source: str, provider: str, api_name: str, version: str, method: str, path: str) -> str:
    """sha256 of ``source|provider|api_name|version|method|path``, first 20 hex characters."""
    key = "|".join([source, provider, api_name, version, method, path])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def doc_id(uri: str) -> str:
    """Identifier of a general document: sha256 of its URI, first 20 hex characters."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:20]


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content gives equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_sha256(row: Mapping[str, Any], fields: tuple[str, ...] = API_CONTENT_FIELDS) -> str:
    """sha256 of the canonical JSON of the row's content fields (JSON-string fields are parsed first,
    so key order inside them does not matter)."""
    content: dict[str, Any] = {}
    for name in fields:
        value = row.get(name)
        if name in ("parameters", "responses", "tags") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        content[name] = value
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def content_sha256_of_json(parts: Mapping[str, str], fields: tuple[str, ...] = API_CONTENT_FIELDS) -> str:
    """``content_sha256`` when each field is already its canonical JSON text (``canonical_json``).

    The ingest hot path builds these strings anyway (they are the stored ``parameters`` etc.), so
    the digest is assembled from them instead of parsing and re-serialising; the bytes hashed are
    exactly those of ``content_sha256`` on the same content (sorted keys, compact separators).
    """
    body = ",".join(f"{json.dumps(name)}:{parts.get(name, 'null')}" for name in sorted(fields))
    return hashlib.sha256(("{" + body + "}").encode("utf-8")).hexdigest()


def sanitize_function_name(raw: str, max_len: int = MAX_FUNCTION_NAME) -> str:
    """Map any string onto ``[A-Za-z0-9_.]``, at most ``max_len`` characters ("" if nothing is left).

    Runs of other characters become one underscore; leading/trailing ``_`` and ``.`` are stripped
    so names stay readable (``GET /users/{id}`` -> ``GET_users_id``).
    """
    name = _INVALID.sub("_", raw)
    name = re.sub(r"_{2,}", "_", name).strip("_.")
    return name[:max_len].rstrip("_.") or name[:max_len]


def unique_name(name: str, seen: set[str], max_len: int = MAX_FUNCTION_NAME) -> str:
    """Return ``name`` or ``name_2``, ``name_3``... (still <= ``max_len``) not yet in ``seen``; add it."""
    candidate, k = name, 1
    while candidate in seen:
        k += 1
        suffix = f"_{k}"
        candidate = name[: max_len - len(suffix)] + suffix
    seen.add(candidate)
    return candidate


def note(stats: Any, event: str, n: int = 1) -> None:
    """Count an event that is not a drop (e.g. a truncated description) on a StepStats.

    Uses ``stats.note`` when StepStats has one; otherwise keeps a ``notes`` Counter on the object
    (read it with ``getattr(stats, "notes", {})``).
    """
    if stats is None or n <= 0:
        return
    if hasattr(stats, "note"):
        stats.note(event, n)
        return
    from collections import Counter

    notes = getattr(stats, "notes", None)
    if notes is None:
        notes = Counter()
        stats.notes = notes
    notes[event] += n
