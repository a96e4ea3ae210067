"""What an ingest stage reports: the rows it dropped (written out for inspection) and its metadata.

Every step counts what it dropped, by reason, with a few examples (:class:`forge.core.stats.StepStats`);
these helpers turn those counts into the ``data/raw/_dropped/<asset>.parquet`` table (one row per
example) and into the metadata dict an asset attaches (``n_skipped``, a Markdown table, per-step counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.io import write_parquet
from forge.core.stats import StepStats


def dropped_rows(
    asset: str, stats: Iterable[StepStats], source_uri: Callable[[str], str | None] | None = None
) -> Iterator[dict[str, Any]]:
    """``DROPPED_ROWS`` for every step's drops (reason ``step:reason``): one row per kept example,
    and one row without detail whose ``n`` is the rest of that reason's count, so the table sums to
    the full counts although only a few examples are kept. ``source_uri(detail)`` fills that column."""
    for st in stats:
        for reason, n in st.dropped.items():
            examples = st.examples.get(reason, [])
            row = {"asset": asset, "reason": f"{st.name}:{reason}"}
            for detail in examples:
                uri = source_uri(detail) if source_uri else None
                yield {**row, "detail": detail, "source_uri": uri, "n": 1}
            if n > len(examples):
                yield {**row, "detail": None, "source_uri": None, "n": n - len(examples)}


def stats_meta(*stats: StepStats) -> dict[str, Any]:
    """Per step: rows in, rows kept, drops by reason, notes (the ``drops`` metadata of an asset)."""
    return {
        st.name: {"n_in": st.n_in, "n_kept": st.n_kept, "dropped": dict(st.dropped), "notes": dict(st.notes)}
        for st in stats
    }


def skip_reasons_md(*stats: StepStats) -> str:
    """A Markdown table of what each step skipped, by reason, with one example each."""
    lines = ["| step | reason | n | example |", "|---|---|---:|---|"]
    for st in stats:
        for reason, n in st.dropped.most_common():
            example = (st.examples.get(reason) or [""])[0].replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {st.name} | {reason} | {n} | {example} |")
    return "\n".join(lines) if len(lines) > 2 else "_nothing skipped_"


def finish_ingest(
    asset: str, out_dir: Path, n_rows: int, stats: list[StepStats], **extra: Any
) -> dict[str, Any]:
    """Write the dropped rows beside the raw tables (``<out_dir>/../_dropped/<asset>.parquet``) and
    return the ingest's metadata: rows written, ``extra``, drops in total, by reason and per step."""
    write_parquet(
        out_dir.parent / "_dropped" / f"{asset}.parquet", dropped_rows(asset, stats), schemas.DROPPED_ROWS
    )
    return {
        "n_rows": n_rows,
        **extra,
        "n_skipped": sum(st.n_dropped for st in stats),
        "skipped_md": skip_reasons_md(*stats),
        "drops": stats_meta(*stats),
    }


def empty_api_table(out_dir: Path, name: str) -> dict[str, Any]:
    """An API table with no rows (the source is not configured): one empty file with the schema,
    and no other Parquet file left in ``out_dir`` (an earlier build's parts would still be read)."""
    write_parquet(out_dir / f"{name}.parquet", [], schemas.API_OPERATIONS)
    for stale in out_dir.glob("*.parquet"):
        if stale.name != f"{name}.parquet":
            stale.unlink()
    return {"n_rows": 0, "n_skipped": 0, "skipped_md": "_source not configured_"}
