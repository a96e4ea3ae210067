"""Completion markers: a rerun with the same inputs skips finished work (datatrove-style).

Each output directory gets ``_SUCCESS.json`` holding the fingerprint of everything that went into
it (configuration, upstream fingerprints, code version) plus the metadata reported then. The
marker is withdrawn before an output is rebuilt in place and written last and atomically, so a
killed run never leaves a marker over half an output, nor an old marker over new files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forge.core.io import atomic_write_json

MARKER = "_SUCCESS.json"


def read_marker(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MARKER
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a corrupt marker means "not done": the work is redone


def is_fresh(out_dir: str | Path, fingerprint: str) -> bool:
    marker = read_marker(out_dir)
    return marker is not None and marker.get("fingerprint") == fingerprint


def withdraw_marker(out_dir: str | Path) -> None:
    """Remove ``out_dir``'s marker before its files are rewritten in place: until the new marker is
    written the directory claims nothing ("not done"), so a build killed halfway never leaves the
    previous materialization's marker over a mix of old and new files."""
    (Path(out_dir) / MARKER).unlink(missing_ok=True)


def write_marker(out_dir: str | Path, fingerprint: str, metadata: dict[str, Any] | None = None) -> None:
    atomic_write_json(Path(out_dir) / MARKER, {"fingerprint": fingerprint, "metadata": metadata or {}})


def upstream_fingerprint(out_dir: str | Path) -> str:
    """The fingerprint of an upstream output, for a downstream step's own fingerprint."""
    marker = read_marker(out_dir)
    if marker is None:
        raise FileNotFoundError(f"{out_dir} has no {MARKER}: materialize the upstream asset first")
    return marker["fingerprint"]
