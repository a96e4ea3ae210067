"""``python kill_after_commit.py <model> <dbt args>``: dbt, killed (``os._exit``) the moment the
COMMIT of ``<model>``'s materialization has executed, before any later statement: the window in which
dbt's own materializations still hold ``<model>__dbt_backup``."""

import os
import sys

from dbt.cli.main import dbtRunner

MODEL = sys.argv[1] if __name__ == "__main__" else ""
committing = False


def on_event(event) -> None:
    global committing
    node = getattr(getattr(event.data, "node_info", None), "unique_id", "") or ""
    if not node.endswith(f".{MODEL}"):
        return
    if event.info.name == "SQLQuery":
        committing = event.data.sql.strip().upper() == "COMMIT"
    elif event.info.name == "SQLQueryStatus" and committing:
        print(f"killed after the COMMIT of {node}", flush=True)
        os._exit(9)


if __name__ == "__main__":
    dbtRunner(callbacks=[on_event]).invoke(sys.argv[2:])
    sys.exit(3)  # dbt finished without reaching the model's commit
