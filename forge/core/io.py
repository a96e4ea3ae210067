"""Atomic Parquet I/O and content fingerprints.

Every ingest and corpus asset writes Parquet (DuckDB takes one writer at a time, see DESIGN.md):
a file is written under a temporary name in the same directory and renamed into place, so a
killed run leaves the previous file intact and readers never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# The atomic writers live in contracts (evaluation writes through them too); re-exported here.
from contracts.io import atomic_directory as atomic_directory
from contracts.io import atomic_write_bytes as atomic_write_bytes
from contracts.io import atomic_write_json as atomic_write_json
from contracts.io import atomic_write_text as atomic_write_text
from contracts.io import swap_directory as swap_directory


def write_parquet(
    path: str | os.PathLike[str],
    rows: Iterable[Mapping[str, Any]] | pa.Table,
    schema: pa.Schema,
    *,
    row_group_size: int = 10_000,
) -> int:
    """Write rows (dicts, or an Arrow table) with ``schema`` atomically; return the row count.

    Rows are streamed in batches of ``row_group_size`` so memory stays flat for large inputs.
    An empty input still writes a valid file with the schema, so downstream SQL sees a table.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    n = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            if isinstance(rows, pa.Table):
                table = rows.select(schema.names).cast(schema)
                writer.write_table(table, row_group_size=row_group_size)
                n = table.num_rows
            else:
                batch: list[Mapping[str, Any]] = []
                for row in rows:
                    batch.append(row)
                    if len(batch) >= row_group_size:
                        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                        n += len(batch)
                        batch = []
                if batch:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n += len(batch)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def write_parquet_batches(
    path: str | os.PathLike[str],
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: pa.Schema,
    *,
    row_group_size: int = 20_000,
    row_group_bytes: int = 64 * 2**20,
) -> int:
    """Like ``write_parquet`` for a stream of Arrow batches or tables: small ones are coalesced
    into row groups of at most about ``row_group_size`` rows or ``row_group_bytes`` bytes (wide
    rows, e.g. 25 KB argument schemas, would otherwise hold hundreds of MB); atomic; returns the
    row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    n, buffered, n_rows, n_bytes = 0, [], 0, 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in batches:
                buffered.append(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
                n_rows, n_bytes = n_rows + batch.num_rows, n_bytes + batch.nbytes
                if n_rows >= row_group_size or n_bytes >= row_group_bytes:
                    writer.write_table(pa.concat_tables(buffered))
                    n, buffered, n_rows, n_bytes = n + n_rows, [], 0, 0
            if buffered:
                writer.write_table(pa.concat_tables(buffered))
                n += n_rows
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def parquet_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The Parquet files of a file, a directory (its ``*.parquet``, sorted), or a list of either
    (in the list's order): how a table split over several assets' directories is read."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.parquet")) if path.is_dir() else [path])
    return files


def read_parquet_rows(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[dict[str, Any]]:
    """Read a Parquet file, a directory of Parquet files, or a list of either into a list of dicts."""
    rows: list[dict[str, Any]] = []
    for f in parquet_files(path):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def iter_parquet_rows(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], batch_size: int = 5_000
) -> Iterator[dict[str, Any]]:
    """Stream the rows of a Parquet file or directory (or a list of them), a record batch at a time."""
    for f in parquet_files(path):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(*parts: Any) -> str:
    """A stable digest of JSON-serialisable parts (configs, upstream digests, code versions)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, or of all files under a directory (names and bytes)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()
