"""A reader waits for the warehouse's writer instead of failing on DuckDB's file lock."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from forge.core.warehouse import connect


def _hold(path, seconds: float) -> subprocess.Popen:
    code = f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep({seconds})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_reader_waits_for_the_writer_then_reads(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select 42 as a")
    holder = _hold(path, 1.5)
    try:
        with pytest.raises(duckdb.IOException, match="lock"):  # a plain open fails while it writes
            duckdb.connect(str(path), read_only=True)
        with connect(path, wait_s=60) as con:
            assert con.execute("select a from t").fetchall() == [(42,)]
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()


def test_reader_gives_up_after_its_wait(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    holder = _hold(path, 30)
    try:
        with pytest.raises(duckdb.IOException, match="lock"):
            connect(path, wait_s=0.2)
    finally:
        holder.kill()
