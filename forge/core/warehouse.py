"""Read-only access to the DuckDB warehouse that dbt writes (dbt is its only writer)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

#: The categories of ``fct_corpus_documents`` (its ``category`` column), in the order they are read.
CORPUS_CATEGORIES = ("agent", "code", "text")


def connect(warehouse: str | Path, wait_s: float = 600.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection whose ``file_search_path`` is the ``data/`` folder beside the file (the
    profile's layout), where dbt's views find their relative ``raw/<table>/*.parquet`` paths.

    While another process writes the file (dbt), DuckDB refuses to open it; the connection is
    retried with backoff for up to ``wait_s`` seconds before the lock error is raised."""
    path = Path(warehouse)
    if not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist: materialize the dbt models first")
    data = path.resolve().parent / "data"
    deadline, pause = time.monotonic() + wait_s, 0.5
    while True:
        try:
            return duckdb.connect(str(path), read_only=True, config={"file_search_path": str(data)})
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 30.0)


def table_fingerprint(warehouse: str | Path, table: str) -> str:
    """A digest of a table's content (row count + order-free hash of every row).

    Downstream assets fold it into their own fingerprint: when dbt rebuilt a mart with the same
    rows, nothing downstream is redone. Columns named ``*_at`` (``fetched_at``, ``created_at``: the
    clock when a row was read or made) are left out of the hash, so a re-ingest of the same content
    (a killed ingest re-executed, a scheduled rebuild) does not redo the tokenizer and everything
    after it; a changed value in any other column does.
    """
    with connect(warehouse) as con:
        columns = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_name = ? and table_schema = current_schema() "
                "order by ordinal_position",
                [table],
            ).fetchall()
        ]
        content = [c for c in columns if not c.lower().endswith("_at")]
        row = "hash(" + ", ".join(f't."{c}"' for c in content) + ")" if content else "0"
        n, h = con.execute(f"select count(*), coalesce(bit_xor({row}), 0) from {table} t").fetchone()
    return f"{table}:{n}:{h}"


def iter_rows(warehouse: str | Path, query: str, batch_size: int = 5_000) -> Iterator[dict[str, Any]]:
    """Stream a query's rows as dicts, a batch at a time."""
    with connect(warehouse) as con:
        reader = con.sql(query).to_arrow_reader(batch_size)
        for batch in reader:
            yield from batch.to_pylist()


def fetch_all(warehouse: str | Path, query: str) -> list[dict[str, Any]]:
    return list(iter_rows(warehouse, query))
