"""The warehouse survives a move: dbt's views over the raw Parquet hold relative paths only.

Builds the staging and intermediate views (every view of the project) over raw tables written here
(one real API row, the others schema-only as an empty ingest leaves them), moves the whole state
directory, deletes the original, and queries every view from the new place.
"""

from __future__ import annotations

import shutil

from forge.core.warehouse import connect
from tests.dbt.rawstate import run_dbt, write_raw_state


def test_every_view_reads_its_parquet_after_the_state_directory_moves(tmp_path):
    state = tmp_path / "before" / "default"
    write_raw_state(state)
    proc = run_dbt(state, tmp_path, "run", "--select", "staging", "intermediate")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    moved = tmp_path / "after" / "elsewhere" / "default"
    shutil.copytree(state, moved)
    shutil.rmtree(tmp_path / "before")
    with connect(moved / "warehouse.duckdb") as con:
        views = dict(con.execute("select view_name, sql from duckdb_views() where not internal").fetchall())
        assert len(views) >= 12, sorted(views)
        assert not [v for v, sql in views.items() if str(tmp_path) in sql]  # no absolute path baked in
        counts = {v: con.execute(f"select count(*) from {v}").fetchone()[0] for v in views}
    assert counts["stg_forge__api_operations"] == 1
