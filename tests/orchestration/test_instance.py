"""The local instance after a ``kill -9``: the killed run's pool slot is freed, a live run's is not.

Found by ``tests/integration/test_kill_graph.py``: a run killed during a dbt step kept the
``duckdb_writer`` slot, and every later ``make demo`` waited for it for good ("Step blocked by limit
for pool duckdb_writer").
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
from dagster import DagsterInstance, DagsterRunStatus

from orchestration.instance import DAGSTER_YAML, _alive, release_dead_runs

ROOT = Path(__file__).resolve().parents[2]

#: a run whose one step, in the duckdb_writer pool, says it started and then waits
POOLED_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dagster import DagsterInstance, asset, materialize

    @asset(pool="duckdb_writer")
    def writer():
        Path(sys.argv[1]).touch()
        time.sleep(300)

    with DagsterInstance.get() as instance:
        materialize([writer], instance=instance)
""")


def _claimed(instance: DagsterInstance) -> list[str]:
    return [s.run_id for s in instance.event_log_storage.get_concurrency_info("duckdb_writer").claimed_slots]


def test_a_killed_runs_pool_slot_is_freed_and_a_live_ones_kept(tmp_path: Path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    started = tmp_path / "started"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", POOLED_RUN, str(started)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the pooled step never started"
            time.sleep(0.1)
        with DagsterInstance.get() as instance:
            [run_id] = _claimed(instance)
            assert release_dead_runs(instance) == []  # its process lives: the slot is its own
            assert _claimed(instance) == [run_id]

            proc.kill()  # SIGKILL: the run reports nothing
            proc.wait(timeout=30)
            assert _claimed(instance) == [run_id]  # what blocked every later run
            assert release_dead_runs(instance) == [run_id]
            assert _claimed(instance) == []
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
            assert release_dead_runs(instance) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_pid_reused_after_the_run_recorded_it_is_not_the_run():
    born = psutil.Process().create_time()
    assert _alive(os.getpid(), recorded_at=born + 5)
    assert not _alive(os.getpid(), recorded_at=born - 5)  # started after the record: another process
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not _alive(gone.pid, recorded_at=born)
