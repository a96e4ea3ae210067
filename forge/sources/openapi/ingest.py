"""The whole OpenAPI directory -> ``raw.openapi_operations`` Parquet, on several processes.

Same rows, in the same order, as ``forge.sources.openapi.directory.openapi_rows`` (a test holds the two equal), but
built for the 2,639-spec directory:

- the archive is read once, by this process, and cut into *shards*: runs of consecutive specs of
  about ``shard_bytes`` of JSON/YAML. A spec larger than ``SPLIT_SPEC_BYTES`` (the two Microsoft
  Graph specs, 20 and 47 MB) becomes several shards, each parsing a slice of its operations
  (``parse_spec(part=...)``), so one spec does not keep one core busy while the other waits;
- each worker parses its shard and writes it as one Parquet part file itself, so rows never
  travel back between processes and this one only reads the archive and bookkeeps;
- shards are consumed in order; an ``api_id`` met again (two spec files describing the same
  operation) is a counted ``duplicate_api_id`` drop, removed from its part file afterwards;
- parts are written into a staging folder and moved into place only when all succeeded; the old
  completion marker is removed first, so a run killed anywhere is never taken for a finished one;
- one bad spec is one counted skip, never a failed run: each spec is loaded and parsed under the
  bounds of ``SpecBounds`` (file size, nesting depth, operations, time), any exception of its own
  is its skip, and a shard whose worker died (killed, out of memory) is run once more alone and
  then skipped, every spec in it listed with the reason (``forge.core.parallel.ordered_map``).

Workers are spawned, not forked (safe under a threaded orchestrator); with ``workers=1`` the same
shards are parsed in this process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.tables import API_OPERATIONS
from forge.core.io import write_parquet_batches
from forge.core.markers import MARKER
from forge.core.parallel import ItemFailed, ordered_map
from forge.core.stats import StepStats
from forge.sources.openapi.directory import (
    DEFAULT_BOUNDS,
    SpecBounds,
    SpecMember,
    accept_member_problem,
    default_fetched_at,
    drop_duplicate,
    iter_members,
)
from forge.sources.openapi.parse import parse_spec

#: A spec larger than this is parsed in slices (each slice loads the whole spec once).
SPLIT_SPEC_BYTES = 12 * 2**20
#: Spec bytes per shard: a part file of a few thousand operations.
SHARD_BYTES = 8 * 2**20
#: Part files are named ``<PART_PREFIX><shard>.parquet``.
PART_PREFIX = "openapi-"


class _Entry(NamedTuple):
    """What a worker reports of one spec (slice) of its shard; rows stay in the part file."""

    uri: str
    part: tuple[int, int]
    api_ids: list[str]
    ops: StepStats
    specs: StepStats
    #: (reason, detail) when the spec was skipped or stopped early; None when it parsed whole
    problem: tuple[str, str] | None = None


#: Most bad files listed by name in the ingest's result (all are counted).
MAX_BAD_FILES = 1000


def _shards(
    members: Iterator[SpecMember], shard_bytes: int, max_specs: int | None
) -> Iterator[list[SpecMember]]:
    """Consecutive members grouped to about ``shard_bytes``; a huge one split into slices alone.

    ``max_specs`` counts spec files (a malformed one included): the first N of the source.
    """
    shard: list[SpecMember] = []
    size = 0
    for i, member in enumerate(members):
        if max_specs is not None and i >= max_specs:
            break
        n_parts = -(-len(member.data) // SPLIT_SPEC_BYTES)
        if n_parts > 1:
            if shard:
                yield shard
                shard, size = [], 0
            for k in range(n_parts):
                yield [member._replace(part=(k, n_parts))]
            continue
        shard.append(member)
        size += len(member.data)
        if size >= shard_bytes:
            yield shard
            shard, size = [], 0
    if shard:
        yield shard


#: The last spec a worker loaded for a split spec: its next slice usually comes to the same worker.
_LOADED: dict[str, Any] = {}


def _load(
    member: SpecMember, specs: StepStats, bounds: SpecBounds
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """The spec of a member (or of a slice of it) and its skip reason; a split spec's drop is
    counted once, on its first slice."""
    if member.part[1] == 1:
        return accept_member_problem(member, specs, bounds)
    if _LOADED.get("name") != member.name:
        _LOADED.clear()
        spec, problem = accept_member_problem(member, StepStats("openapi_specs"), bounds)
        _LOADED.update(name=member.name, spec=spec, problem=problem)
    if member.part[0] == 0:  # the first slice counts the spec, once
        if _LOADED["problem"] is None:
            specs.keep()
        else:
            specs.drop(_LOADED["problem"][0], f"{member.name}: {_LOADED['problem'][1]}")
    return _LOADED["spec"], _LOADED["problem"]


def _spec_rows(
    member: SpecMember,
    spec: dict[str, Any],
    fetched_at: datetime,
    ops: StepStats,
    bounds: SpecBounds,
    ids: list[str],
) -> Iterator[pa.RecordBatch]:
    """Batches of one spec's rows (``ids`` gets their api_ids as they go), converted as they come
    so a huge spec's dicts never pile up."""
    rows = parse_spec(
        spec,
        member.provider,
        member.uri,
        fetched_at,
        ops,
        member.api_name,
        member.part,
        max_operations=bounds.max_operations,
        time_limit_s=bounds.time_limit_s,
    )
    buf: list[dict[str, Any]] = []
    for row in rows:
        buf.append(row)
        ids.append(row["api_id"])
        if len(buf) >= 2000:
            yield pa.RecordBatch.from_pylist(buf, schema=API_OPERATIONS)
            buf = []
    if buf:
        yield pa.RecordBatch.from_pylist(buf, schema=API_OPERATIONS)


def _parse_shard(
    shard: list[SpecMember], fetched_at: datetime, path: str, bounds: SpecBounds = DEFAULT_BOUNDS
) -> list[_Entry]:
    """Worker: parse a shard's specs and write their rows to ``path`` (no file when it has none).

    Each spec is isolated: an exception while parsing it (whatever its kind) ends that spec, whose
    rows so far stay (each is a whole, valid row) and whose ``problem`` names the error."""
    entries: list[_Entry] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for member in shard:
            ops, specs = StepStats("openapi_operations"), StepStats("openapi_specs")
            spec, problem = _load(member, specs, bounds)
            ids: list[str] = []
            if spec is not None:
                try:
                    yield from _spec_rows(member, spec, fetched_at, ops, bounds, ids)
                except Exception as exc:  # RecursionError, MemoryError: this spec's skip, not the run's
                    lost = len(ids) % 2000  # rows parsed but not yet flushed: never written
                    del ids[len(ids) - lost :]
                    ops.n_kept, ops.n_in = ops.n_kept - lost, ops.n_in - lost
                    problem = ("spec_error", f"{type(exc).__name__}: {str(exc)[:200]}")
                    ops.drop("spec_error", f"{member.uri}: {problem[1]} (after {len(ids)} operations)")
                for reason in ("max_operations", "time_limit"):
                    if ops.dropped[reason]:
                        problem = (reason, ops.examples[reason][-1])
            entries.append(_Entry(member.uri, member.part, ids, ops, specs, problem))
        if shard[-1].part[0] == shard[-1].part[1] - 1:
            _LOADED.clear()  # the last slice: let the big spec go

    n = write_parquet_batches(path, batches(), API_OPERATIONS)
    if n == 0:
        Path(path).unlink(missing_ok=True)
    return entries


def _parse_part(job: tuple[list[SpecMember], datetime, str, SpecBounds]) -> list[_Entry]:
    """Worker entry of ``ordered_map``: ``_parse_shard`` on one ``(shard, fetched_at, part path, bounds)``."""
    return _parse_shard(*job)


def _ordered(
    shards: Iterator[list[SpecMember]],
    fetched_at: datetime,
    staging: Path,
    workers: int,
    bounds: SpecBounds = DEFAULT_BOUNDS,
    memory_bytes: int | None = None,
) -> Iterator[tuple[Path, list[_Entry]]]:
    """``(part path, entries)`` per shard, in shard order, parsed on ``workers`` processes.

    At most ``4 * workers`` shards are in flight (a few MB of spec bytes each), so memory is
    bounded however large the directory. A shard that failed as a whole (its worker died twice,
    or an error outside any one spec) has no part file and one skipped entry per spec in it.
    """
    names: dict[int, list[SpecMember]] = {}

    def part_path(i: int) -> Path:
        return staging / f"{PART_PREFIX}{i:05d}.parquet"

    def jobs() -> Iterator[tuple[list[SpecMember], datetime, str, SpecBounds]]:
        for i, shard in enumerate(shards):
            names[i] = [m._replace(data=b"") for m in shard]  # who was in it, not the bytes
            yield shard, fetched_at, str(part_path(i)), bounds

    results = ordered_map(
        _parse_part, jobs(), workers, window=4 * workers, errors="return", memory_bytes=memory_bytes
    )
    for i, entries in enumerate(results):
        members = names.pop(i)
        if isinstance(entries, ItemFailed):
            part_path(i).unlink(missing_ok=True)
            entries = [_failed_entry(m, entries) for m in members]
        yield part_path(i), entries


def _failed_entry(member: SpecMember, failure: ItemFailed) -> _Entry:
    """A spec of a shard that failed as a whole: counted once (on its first slice), by reason."""
    specs = StepStats("openapi_specs")
    problem = (failure.reason, failure.detail)
    if member.part[0] == 0:
        specs.drop(failure.reason, f"{member.name}: {failure.detail}")
    return _Entry(member.uri, member.part, [], StepStats("openapi_operations"), specs, problem)


def _drop_rows(path: Path, rows: list[int]) -> None:
    """Rewrite a part file without the given row positions (repeated api_ids; rare)."""
    table = pq.read_table(path)
    keep = [True] * table.num_rows
    for i in rows:
        keep[i] = False
    write_parquet_batches(path, table.filter(pa.array(keep)).to_batches(), API_OPERATIONS)


def _swap_into(out_dir: Path, staging: Path) -> None:
    """Replace ``out_dir``'s part files by the staged ones; the marker goes first (see module doc)."""
    (out_dir / MARKER).unlink(missing_ok=True)
    for old in out_dir.glob(f"{PART_PREFIX}*.parquet"):
        old.unlink()
    for new in sorted(staging.glob(f"{PART_PREFIX}*.parquet")):
        os.replace(new, out_dir / new.name)


def write_openapi_parquet(
    source: Path,
    out_dir: Path,
    providers: list[str] | None = None,
    max_specs: int | None = None,
    stats: StepStats | None = None,
    spec_stats: StepStats | None = None,
    fetched_at: datetime | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    shard_bytes: int = SHARD_BYTES,
    bounds: SpecBounds = DEFAULT_BOUNDS,
    bad_files: list[dict[str, str]] | None = None,
    memory_bytes: int | None = None,
) -> int:
    """Every operation of ``source`` (tarball or folder) as part files ``out_dir/openapi-*.parquet``.

    Returns the row count. ``stats`` / ``spec_stats`` count operations and specs as in
    ``openapi_rows``; ``progress(specs_done, rows_so_far)`` is called after every shard.
    ``max_specs`` takes the first N spec files. An empty result still leaves one (empty) part
    file, so readers see the table. ``bounds`` limits each spec; ``bad_files`` (when given) gets
    one ``{"file", "reason", "detail"}`` per spec skipped or cut short (the first
    ``MAX_BAD_FILES``); ``memory_bytes`` caps each worker's address space.
    """
    source, out_dir = Path(source), Path(out_dir)
    fetched_at = fetched_at or default_fetched_at(source)
    stats = stats if stats is not None else StepStats("openapi_operations")
    spec_stats = spec_stats if spec_stats is not None else StepStats("openapi_specs")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        seen: set[str] = set()
        repeats: dict[Path, list[int]] = {}
        n_specs = 0
        shards = _shards(iter_members(source, providers, bounds.max_file_bytes), shard_bytes, max_specs)
        for path, entries in _ordered(shards, fetched_at, staging, workers, bounds, memory_bytes):
            offset = 0
            for entry in entries:
                stats.merge(entry.ops)
                spec_stats.merge(entry.specs)
                n_specs += entry.part[0] == 0
                if entry.problem is not None and bad_files is not None and len(bad_files) < MAX_BAD_FILES:
                    if not any(b["file"] == entry.uri for b in bad_files[-entry.part[1] :]):
                        reason, detail = entry.problem
                        bad_files.append({"file": entry.uri, "reason": reason, "detail": detail})
                for j, api_id in enumerate(entry.api_ids):
                    if api_id in seen:
                        drop_duplicate(stats, f"{entry.uri} api_id={api_id}")
                        repeats.setdefault(path, []).append(offset + j)
                    seen.add(api_id)
                offset += len(entry.api_ids)
            if progress is not None:
                progress(n_specs, len(seen))
        for path, rows in repeats.items():
            _drop_rows(path, rows)
        if not any(staging.glob(f"{PART_PREFIX}*.parquet")):
            write_parquet_batches(staging / f"{PART_PREFIX}00000.parquet", [], API_OPERATIONS)
        _swap_into(out_dir, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(seen)
