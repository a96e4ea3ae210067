"""A dbt build killed right after a model's swap commits leaves no ``__dbt_backup`` relation visible.

dbt's view and table materializations rename the live relation to ``<model>__dbt_backup``, commit,
and drop the backup only after the commit; the project's post-hook ``drop_backup_before_commit``
drops it inside the transaction. Each model here is built once, then rebuilt by a dbt process that
exits the instant that model's COMMIT has executed (``kill_after_commit.py``); the warehouse must
then hold the model and no dbt staging relation, and every view must still query.
"""

from __future__ import annotations

import sys
from pathlib import Path

from forge.core.warehouse import connect
from tests.dbt.rawstate import run_dbt, write_raw_state

KILLER = Path(__file__).with_name("kill_after_commit.py")


def test_a_kill_right_after_a_commit_leaves_no_backup_relation(tmp_path):
    state = tmp_path / "state"
    write_raw_state(state)
    select = ("--select", "+dim_apis")
    first = run_dbt(state, tmp_path, "run", *select)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]

    for model in ("stg_forge__api_operations", "dim_apis"):  # a view, a table
        killed = run_dbt(state, tmp_path, "run", *select, runner=[sys.executable, str(KILLER), model])
        assert killed.returncode == 9, killed.stdout[-4000:] + killed.stderr[-2000:]
        assert "killed after the COMMIT" in killed.stdout

        with connect(state / "warehouse.duckdb") as con:
            rels = dict(
                con.execute(
                    "select table_name, table_type from information_schema.tables where table_schema = 'main'"
                ).fetchall()
            )
            assert not [r for r in rels if r.endswith(("__dbt_backup", "__dbt_tmp"))], (model, sorted(rels))
            assert {"stg_forge__api_operations": "VIEW", "dim_apis": "BASE TABLE"}.items() <= rels.items()
            assert con.execute("select count(*) from dim_apis").fetchone() == (1,)
            for name in rels:
                con.execute(f"select count(*) from {name}").fetchone()
