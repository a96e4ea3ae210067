"""The local Dagster instance (``DAGSTER_HOME``): created on first use with telemetry off and the
pools that protect single-writer stores (the DuckDB warehouse, one trainer at a time), and cleared
of the pool slots that runs killed with ``kill -9`` still hold."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from assets.profile import default_home
from contracts.io import atomic_write_text

DAGSTER_YAML = """\
# Written by orchestration.instance; edit freely (it is only written when missing).
telemetry:
  enabled: false
concurrency:
  pools:
    # duckdb_writer: dbt is the warehouse's only writer; trainer: one training job at a time.
    default_limit: 1
"""


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default_home() / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        atomic_write_text(cfg, DAGSTER_YAML)  # a kill mid-write must not leave half a config for good
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Free the pool slots of runs whose process is gone; return their run ids.

    A run killed with ``kill -9`` (or by the OOM killer) never reports its end: it stays STARTED and
    keeps its ``duckdb_writer`` or ``trainer`` slot, and its queued steps stay first in line, so every
    later run blocks on that pool for good (no daemon runs here to notice). A run holding or awaiting
    a slot whose process (the pid its first engine event names, on this machine: the instance is
    local) no longer exists, or is another process by now, is marked failed and its slots freed.
    Finished runs that still hold slots are freed too. Runs whose process lives are left alone."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    released = []
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            started = _run_process(instance, run_id)
            if started is None or _alive(*started):
                continue  # no pid recorded yet, or the run is still going
            instance.report_run_failed(
                run,
                message=f"the run's process (pid {started[0]}) is gone (killed): its pool slots are freed",
            )
        storage.free_concurrency_slots_for_run(run_id)
        released.append(run_id)
    return released


def _run_process(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the process that executes ``run_id``'s steps and when Dagster recorded it (the
    in-process executor's "Executing steps in process (pid: N)", or the launcher's or the
    multiprocess executor's first engine event that names a pid)."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = getattr(entry.dagster_event.event_specific_data, "metadata", None) or {}
        pid = metadata.get("pid")
        if pid is not None:
            return int(getattr(pid, "value", pid)), entry.timestamp
    return None


def _alive(pid: int, recorded_at: float) -> bool:
    """Whether ``pid`` exists and was started before ``recorded_at`` (Unix time): a process started
    later reuses the number of a dead one (Linux: ``/proc``; elsewhere any process with the pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return True
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= recorded_at + 1.0
