"""The cluster profile on real servers: Dagster on PostgreSQL, steps on 2 Celery workers (Redis), MLflow
server on PostgreSQL — and its faults: a worker killed with SIGKILL mid-step, PostgreSQL restarted
between two runs. A tiny asset selection (the whole graph runs in `make cluster-demo`)."""

from __future__ import annotations

import _thread
import threading
import time
import uuid

import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter

pytestmark = pytest.mark.integration

PYTHON_OPS = AssetKey(["raw", "python_module_operations"])
OPENAPI_OPS = AssetKey(["raw", "openapi_operations"])
RUN_DEADLINE_S = 300


def _step_key(key: AssetKey) -> str:
    return "__".join(key.path)


def _events(instance: DagsterInstance, run_id: str, kind: str, step: str | None = None) -> list:
    return [
        e.dagster_event
        for e in instance.all_logs(run_id)
        if e.dagster_event
        and e.dagster_event.event_type_value == kind
        and step in (None, e.dagster_event.step_key)
    ]


def test_steps_on_two_workers_survive_a_worker_killed_mid_step(cluster):
    """Two fresh steps at once, one per worker; the worker running the OpenAPI step is killed with
    SIGKILL once the step has started. Redis hands the unacknowledged step to the other worker after
    the visibility timeout; the run succeeds, the killed attempt left no materialization."""
    from orchestration.cluster import run_cluster, step_workers

    tag = {"test": uuid.uuid4().hex}
    killed: list[str] = []

    def kill_when_started(instance: DagsterInstance) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            runs = instance.get_runs(RunsFilter(tags=tag))
            if runs:
                started = _events(instance, runs[0].run_id, "STEP_START", _step_key(OPENAPI_OPS))
                workers = step_workers(instance, runs[0].run_id).get(_step_key(OPENAPI_OPS))
                if started and workers:
                    name = workers[0].split("@")[0]
                    cluster.services.kill_worker(name)  # kill -9 the worker (its whole process group)
                    killed.append(workers[0])
                    return
            time.sleep(0.1)

    done = threading.Event()

    def watchdog() -> None:
        # a step never handed on would block the run forever: interrupt it (Dagster stops the run)
        if not done.wait(RUN_DEADLINE_S):
            _thread.interrupt_main()

    with DagsterInstance.get() as instance:
        killer = threading.Thread(target=kill_when_started, args=(instance,), daemon=True)
        killer.start()
        threading.Thread(target=watchdog, daemon=True).start()
        t0 = time.monotonic()
        try:
            result = run_cluster(cluster.profile, instance, [PYTHON_OPS, OPENAPI_OPS], tags=tag)
        finally:
            done.set()
        elapsed = time.monotonic() - t0
        assert elapsed < RUN_DEADLINE_S, "the killed worker's step was never taken over"
        killer.join(timeout=5)
        assert killed, "the OpenAPI step never started on a worker"
        assert result.success, [e.message for e in result.all_events if e.is_failure]

        workers = step_workers(instance, result.run_id)
        # both workers ran steps of the run: the killed one started the OpenAPI step, the other finished it
        assert len({w for ws in workers.values() for w in ws}) == 2, workers
        assert workers[_step_key(OPENAPI_OPS)][0] == killed[0]
        assert workers[_step_key(OPENAPI_OPS)][-1] != killed[0]
        # one materialization per asset from the attempt that finished; the killed attempt has one only
        # if the kill landed after its output was complete (a busy machine can be that slow to kill):
        # an asset is only ever reported once its output is whole
        starts = _events(instance, result.run_id, "STEP_START", _step_key(OPENAPI_OPS))
        assert len(starts) == 2
        assert len(_events(instance, result.run_id, "ASSET_MATERIALIZATION", _step_key(PYTHON_OPS))) == 1
        mats = _events(instance, result.run_id, "ASSET_MATERIALIZATION", _step_key(OPENAPI_OPS))
        assert [m.pid for m in mats if m.pid != starts[0].pid] == [starts[1].pid]
        assert elapsed >= 20  # the visibility timeout passed before the hand-over


def test_postgres_restart_between_runs_and_parallel_mlflow_logging(cluster):
    """PostgreSQL restarted (connections cut) between two runs: the next run and the MLflow server work;
    several processes' worth of concurrent MLflow writers never see "database is locked"."""
    from mlflow.tracking import MlflowClient

    from orchestration.cluster import run_cluster

    cluster.services.restart_postgres()
    with DagsterInstance.get() as instance:
        result = run_cluster(cluster.profile, instance, [PYTHON_OPS])
        assert result.success
        mat = _events(instance, result.run_id, "ASSET_MATERIALIZATION", _step_key(PYTHON_OPS))
        assert len(mat) == 1 and mat[0].event_specific_data.materialization.metadata["up_to_date"].value

    client = MlflowClient()  # MLFLOW_TRACKING_URI: the server, on PostgreSQL
    exp = client.create_experiment(f"concurrency-{uuid.uuid4().hex[:8]}")
    runs = [client.create_run(exp).info.run_id for _ in range(4)]
    errors: list[BaseException] = []

    def log(run_id: str) -> None:
        try:
            for step in range(20):
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(len(client.get_metric_history(r, "loss")) == 20 for r in runs)
