"""Identifiers and tool names shared by the ingesters: document ids, valid and unique tool names.

``api_id`` and ``content_sha256`` are defined with the ``api_operations`` row builder in
``contracts.tables`` and re-exported here; a general document's ``doc_id`` and the tool-name rules
(``sanitize_function_name``, ``unique_name``) live here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# The row identifiers and the content digest are part of the api_operations contract (contracts
# builds every row with them); re-exported here for the forge code that uses them on their own.
from contracts.tables import API_CONTENT_FIELDS as API_CONTENT_FIELDS
from contracts.tables import api_id as api_id
from contracts.tables import canonical_json as canonical_json
from contracts.tables import content_sha256 as content_sha256
from contracts.tables import content_sha256_of_json as content_sha256_of_json

#: The longest tool name we emit (OpenAI-style function names allow 64 characters).
MAX_FUNCTION_NAME = 64

_INVALID = re.compile(r"[^A-Za-z0-9_.]+")


def doc_id(uri: str) -> str:
    """Identifier of a general document: sha256 of its URI, first 20 hex characters."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:20]


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
