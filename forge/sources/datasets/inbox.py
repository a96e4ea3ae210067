"""A watched folder of public function-calling datasets: drop a file in, it is ingested.

Layout: ``<inbox>/<format>/<file>`` — the sub-folder names the file's format (one of
:data:`forge.sources.datasets.registry.FORMATS` or an alias: ``xlam/``, ``toolace/``, ``glaive/``,
``toolbench/``, ``openai/``, ``sharegpt/``), so a dropped file needs no configuration. Every such file
becomes one :class:`DatasetSpec` named ``inbox-<format>-<stem>`` beside the profile's configured
datasets; a file anywhere else (the top level, an unknown format's folder) is listed as not placed,
never guessed at. Hidden files and partial copies (``.``-prefixed, ``*.part``, ``*.tmp``) are ignored
until renamed, so a copy in progress is not read half-written.

:func:`inbox_state` is what the Dagster sensor compares between ticks (name, size, modification time
of each file); the ingest itself reads the files, so its fingerprint follows their content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from forge.core.stage import StageConfig
from forge.sources.datasets.registry import ALIASES, FORMATS
from forge.sources.datasets.stage import DatasetSpec

#: suffixes of data files the connectors read
DATA_SUFFIXES = (".json", ".jsonl", ".parquet")


class DatasetInboxConfig(StageConfig):
    """``sources.dataset_inbox``: the watched folder (relative to the repository root, or absolute;
    None: no inbox) and the license the dropped files' rows carry (checked against the allow-list)."""

    dir: str | None = None
    license: str = "unknown"
    #: stop after this many records per dropped file (None: all)
    max_rows: int | None = None


@dataclass
class InboxListing:
    specs: list[DatasetSpec] = field(default_factory=list)
    #: files present but not ingested (wrong place or unknown format folder), relative to the inbox
    not_placed: list[str] = field(default_factory=list)


def _visible(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith((".part", ".tmp"))


def list_inbox(inbox: Path, cfg: DatasetInboxConfig) -> InboxListing:
    """The dataset specs of the files in ``inbox`` (sorted by path), and the files left out."""
    out = InboxListing()
    if not inbox.is_dir():
        return out
    for path in sorted(p for p in inbox.rglob("*") if _visible(p)):
        rel = path.relative_to(inbox)
        fmt = rel.parts[0] if len(rel.parts) > 1 else None
        if fmt is None or ALIASES.get(fmt, fmt) not in FORMATS or path.suffix not in DATA_SUFFIXES:
            out.not_placed.append(str(rel))
            continue
        stem = "-".join(rel.with_suffix("").parts[1:])
        out.specs.append(
            DatasetSpec(
                name=f"inbox-{fmt}-{stem}",
                format=fmt,
                path=str(path),
                license=cfg.license,
                max_rows=cfg.max_rows,
            )
        )
    return out


def inbox_state(inbox: Path) -> dict[str, str]:
    """``{relative path: "size:mtime_ns"}`` of every visible file: a new or rewritten file changes it."""
    if not inbox.is_dir():
        return {}
    return {
        str(p.relative_to(inbox)): f"{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in sorted(inbox.rglob("*"))
        if _visible(p)
    }
