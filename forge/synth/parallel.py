"""Synthesis at full scale: API rows streamed in chunks of whole APIs, chunks synthesized by a
pool of worker processes, each chunk written to its own Parquet part (constant memory).

:func:`forge.synth.trajectories.synthesize` holds its whole input in memory (it groups operations by
API and draws distractor/irrelevance tools across APIs). Here the input is read in Arrow batches
and cut into chunks of about ``chunk_ops`` operations at API boundaries (rows of one API are
contiguous in the API tables: they are written spec by spec), so memory is bounded by one
chunk per worker plus the open Parquet writer, whatever the total. Irrelevance tools are drawn
from the other APIs of the same chunk. Trajectory ids depend only on (seed, api_id, k, generator),
so they do not change with the chunking.

Grain of the output: ``out_dir/part-<chunk>.parquet``, contracts.tables.TRAJECTORIES rows. Each part
is written atomically; parts left from an earlier run with more chunks are removed at the end.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from contracts.tables import TRAJECTORIES
from forge.core.io import parquet_files, write_parquet
from forge.core.parallel import ordered_map
from forge.core.stats import StepStats


@dataclass(frozen=True)
class _Job:
    index: int
    rows: list[dict]
    out: str
    seed: int
    per_api: int
    patterns: dict[str, float] | None
    heldout: frozenset[str]
    generator: dict | None
    created_at: dt.datetime


def iter_api_chunks(
    api_path: str | os.PathLike[str], chunk_ops: int, stats: StepStats, *, columns: list[str] | None = None
) -> Iterator[list[dict]]:
    """Chunks of API rows (dicts) of about ``chunk_ops`` rows, never splitting an API
    (provider, api_name, version). A (API, function_name) seen in an earlier chunk is a counted
    drop (``duplicate_function_name``), so no trajectory id can repeat across chunks."""
    files = parquet_files(api_path)
    seen: set[tuple] = set()
    chunk: list[dict] = []
    last_key: tuple | None = None
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=2048, columns=columns):
            for row in batch.to_pylist():
                key = (row.get("provider") or "", row.get("api_name") or "", row.get("version") or "")
                if key != last_key and len(chunk) >= chunk_ops:
                    yield chunk
                    chunk = []
                last_key = key
                ident = (*key, row.get("function_name"))
                if ident in seen:
                    stats.drop("duplicate_function_name", f"{key}: {row.get('function_name')}")
                    continue
                seen.add(ident)
                chunk.append(row)
    if chunk:
        yield chunk


def _run_chunk(job: _Job) -> dict[str, Any]:
    """Worker: synthesize one chunk into its part file; return counts (small, picklable)."""
    from forge.synth.generators import make_generator
    from forge.synth.trajectories import synthesize

    stats = StepStats("trajectories")
    counters: Counter = Counter()
    by_pattern: Counter = Counter()
    gen = make_generator(job.generator)

    def counted(rows: Iterator[dict]) -> Iterator[dict]:
        for row in rows:
            by_pattern[(row["pattern"], row["is_valid"])] += 1
            yield row

    rows = synthesize(
        job.rows,
        seed=job.seed,
        per_api=job.per_api,
        patterns=job.patterns,
        heldout_providers=set(job.heldout),
        stats=stats,
        generator=gen,
        counters=counters,
        created_at=job.created_at,
    )
    n = write_parquet(job.out, counted(rows), TRAJECTORIES)
    gen_counts = dict(getattr(gen, "counts", {}) or {})
    return {
        "index": job.index,
        "n_rows": n,
        "n_ops": len(job.rows),
        "stats": stats,
        "counters": counters,
        "by_pattern": by_pattern,
        "generator_counts": gen_counts,
    }


def synthesize_to_parquet(
    api_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    seed: int,
    per_api: int,
    heldout_providers: list[str] | set[str],
    patterns: dict[str, float] | None = None,
    workers: int = 1,
    chunk_ops: int = 4000,
    generator: dict | None = None,
    created_at: dt.datetime | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Synthesize trajectories from ``api_path`` (a Parquet file or a directory of them, e.g.
    raw/openapi_operations, or a list of such directories) into ``out_dir/part-*.parquet``; return
    metadata (rows, valid share, counts by pattern, drops by reason).

    ``workers`` processes run chunks in parallel (1: in this process); chunks are collected in
    input order (``forge.core.parallel.ordered_map``), so counts and drop examples do not depend on
    which worker finished first. ``generator`` is a :func:`forge.synth.generators.make_generator`
    config (None: templates), built once per chunk in the worker, so an LLM generator should run
    with ``workers=1``. ``on_chunk`` is called in this process after each chunk with its counts
    plus ``done`` (chunks finished) — for progress and memory probes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    created_at = created_at or dt.datetime.now(dt.UTC)
    read_stats, stats = StepStats("api_chunks"), StepStats("trajectories")
    counters: Counter = Counter()
    by_pattern: Counter = Counter()
    gen_counts: Counter = Counter()
    heldout = frozenset(heldout_providers)
    jobs = (
        _Job(
            i,
            rows,
            str(out / f"part-{i:05d}.parquet"),
            seed,
            per_api,
            patterns,
            heldout,
            generator,
            created_at,
        )
        for i, rows in enumerate(iter_api_chunks(api_path, chunk_ops, read_stats))
    )
    written: set[str] = set()
    n_rows = n_ops = done = 0

    def collect(res: dict[str, Any]) -> None:
        nonlocal n_rows, n_ops, done
        done += 1
        n_rows += res["n_rows"]
        n_ops += res["n_ops"]
        written.add(f"part-{res['index']:05d}.parquet")
        stats.merge(res["stats"])
        counters.update(res["counters"])
        by_pattern.update(res["by_pattern"])
        gen_counts.update(res["generator_counts"])
        if on_chunk is not None:
            on_chunk({**res, "done": done, "n_rows_total": n_rows})

    # Chunks are collected in input order; at most 2 x workers are in flight (Pool.imap would
    # read the whole input ahead), so the parent never holds more than a few chunks.
    for res in ordered_map(_run_chunk, jobs, workers, window=2 * workers):
        collect(res)
    for stale in out.glob("part-*.parquet"):
        if stale.name not in written:
            stale.unlink()
    if not written:  # an empty input still leaves a readable table for dbt
        write_parquet(out / "part-00000.parquet", [], TRAJECTORIES)
    patterns_count = Counter()
    valid = Counter()
    for (pattern, ok), c in by_pattern.items():
        patterns_count[pattern] += c
        valid[ok] += c
    return {
        "n_rows": n_rows,
        "n_valid": valid[True],
        "n_invalid": valid[False],
        "share_valid": valid[True] / n_rows if n_rows else 0.0,
        "n_api_operations": n_ops,
        "n_chunks": done,
        "by_pattern": dict(patterns_count),
        "valid_by_pattern": {p: c for (p, ok), c in by_pattern.items() if ok},
        "counters": dict(counters),
        "generator_counts": dict(gen_counts),
        "drops": {s.name: s.as_dict() for s in (read_stats, stats)},
    }
