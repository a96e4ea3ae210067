"""Public function-calling datasets -> normalized trajectory rows (raw.dataset_trajectories).

A dataset spec (profile key ``sources.datasets``, a list) is::

    {"name": "xlam-60k", "format": "xlam", "path": "data/xlam.jsonl",   # or "url" / "hub_id"
     "license": "CC-BY-4.0", "split": "train", "max_rows": 100000, "revision": null}

Every record becomes one row of :data:`DATASET_TRAJECTORIES` (contracts.tables.TRAJECTORIES plus
``source_uri``, the ``<file or URL>#<index>`` it came from, and ``is_license_allowed``), or a
counted drop by reason; a call that does not validate keeps its row with ``is_valid`` False,
counted as ``invalid_<reason>``. Rows whose license is not allowed stay in raw (marked), so the
allow-list can change without re-ingesting; dbt filters on it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from contracts import tables as schemas
from forge.core.io import write_parquet
from forge.core.report import dropped_rows
from forge.core.stats import StepStats
from forge.sources.datasets.common import RowError, build_row
from forge.sources.datasets.registry import ALIASES, parser_for
from forge.sources.datasets.sources import iter_records

DATASET_TRAJECTORIES = schemas.TRAJECTORIES.append(pa.field("source_uri", pa.string())).append(
    pa.field("is_license_allowed", pa.bool_())
)
DEFAULT_CACHE = Path.home() / ".cache" / "hephaestus" / "datasets"


def license_allowed(license: str | None, allow_list: list[str] | None) -> bool:
    """Whether a row with ``license`` may enter training: ``"*"`` (or no list) allows all,
    otherwise an exact, case-insensitive match; a compound ``"A AND B"`` needs every part
    allowed. Mirrors dbt's ``license_allowed`` macro (which compares whole strings) for the
    single licenses datasets carry."""
    if allow_list is None or "*" in allow_list:
        return True
    allowed = {a.strip().lower() for a in allow_list}
    parts = [p.strip().lower() for p in re.split(r"\s+AND\s+", license or "unknown")]
    return all(p in allowed for p in parts)


def iter_dataset_trajectories(
    spec: dict,
    stats: StepStats,
    *,
    allowed_licenses: list[str] | None = None,
    cache_dir: Path | None = None,
    created_at: dt.datetime | None = None,
) -> Iterator[dict]:
    """Rows of one dataset (see the module docstring for the spec and the row shape)."""
    for key in ("name", "format"):
        if not spec.get(key):
            raise ValueError(f"dataset spec needs {key!r}: {spec}")
    parse = parser_for(spec["format"])
    fmt = ALIASES.get(spec["format"], spec["format"])
    created_at = created_at or dt.datetime.now(dt.UTC)
    ok_license = license_allowed(spec.get("license"), allowed_licenses)
    limit = spec.get("max_rows")
    n = 0
    for row_key, record in iter_records(spec, cache_dir or DEFAULT_CACHE, stats):
        if limit is not None and n >= limit:
            stats.note("max_rows_reached")
            break
        n += 1
        try:
            parsed = parse(record, row_key)
            row = build_row(
                parsed,
                source=spec["name"],
                license=spec.get("license"),
                row_key=row_key,
                generator=f"dataset:{fmt}",
                created_at=created_at,
            )
        except RowError as exc:
            stats.drop(exc.reason, f"{row_key}: {exc.detail}")
            continue
        except Exception as exc:  # malformed beyond a check (MemoryError, RecursionError too): this row only
            stats.drop("unparseable", f"{row_key}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        for note in parsed.notes:
            stats.note(note)
        row["is_license_allowed"] = ok_license
        if row["is_valid"]:
            stats.keep()
        else:
            stats.drop(f"invalid_{row['invalid_reason']}", f"{row_key}: {row['calls'][:200]}")
        yield row


def ingest_datasets(
    specs: list[dict],
    out_dir: Path,
    *,
    allowed_licenses: list[str] | None = None,
    cache_dir: Path | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every dataset in ``specs`` -> ``out_dir/part-<i>-<name>.parquet`` (atomic, streamed);
    rejected records -> ``out_dir/../_dropped/dataset_trajectories.parquet``. Parts of datasets
    no longer configured are removed; no spec at all leaves one empty part (a readable table).
    Returns metadata: rows, valid rows, rows by source / pattern / license verdict, drops."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    created_at = created_at or dt.datetime.now(dt.UTC)
    names = [s.get("name") for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names must be unique: {names}")
    per_source: dict[str, Any] = {}
    written, all_stats = set(), []
    by_pattern: Counter = Counter()
    n_total = n_valid = n_allowed = 0
    for i, spec in enumerate(specs):
        stats = StepStats(f"dataset:{spec.get('name')}")
        all_stats.append(stats)
        part = f"part-{i:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(spec.get('name')))}.parquet"
        counts: Counter = Counter()

        def counted(rows: Iterator[dict], counts: Counter = counts) -> Iterator[dict]:
            for row in rows:
                counts[row["pattern"]] += 1
                counts["_valid"] += row["is_valid"]
                counts["_allowed"] += row["is_license_allowed"]
                yield row

        rows = iter_dataset_trajectories(
            spec, stats, allowed_licenses=allowed_licenses, cache_dir=cache_dir, created_at=created_at
        )
        n = write_parquet(out_dir / part, counted(rows), DATASET_TRAJECTORIES)
        written.add(part)
        valid, allowed = counts.pop("_valid"), counts.pop("_allowed")
        by_pattern.update(counts)
        n_total, n_valid, n_allowed = n_total + n, n_valid + valid, n_allowed + allowed
        per_source[spec["name"]] = {
            "format": spec.get("format"),
            "license": spec.get("license"),
            "is_license_allowed": license_allowed(spec.get("license"), allowed_licenses),
            "n_rows": n,
            "n_valid": valid,
            "by_pattern": dict(counts),
            "drops": stats.as_dict(),
        }
    if not specs:
        part = "part-000-empty.parquet"
        write_parquet(out_dir / part, [], DATASET_TRAJECTORIES)
        written.add(part)
    for stale in out_dir.glob("part-*.parquet"):
        if stale.name not in written:
            stale.unlink()
    write_parquet(
        out_dir.parent / "_dropped" / "dataset_trajectories.parquet",
        dropped_rows("dataset_trajectories", all_stats, source_uri=lambda d: d.split(": ", 1)[0]),
        schemas.DROPPED_ROWS,
    )
    return {
        "n_rows": n_total,
        "n_valid": n_valid,
        "n_license_allowed": n_allowed,
        "by_pattern": dict(by_pattern),
        "by_source": per_source,
    }
