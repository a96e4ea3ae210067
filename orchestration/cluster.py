"""The `cluster` profile's orchestration: a Dagster instance on PostgreSQL, steps on Celery workers.

- ``dagster.yaml`` for ``dagster.instance: postgres`` names the server through ``DAGSTER_PG_*`` (the
  password is never written to a file); runs, the event log and schedules live there, and so do the
  concurrency pools (``duckdb_writer``, ``trainer``) every worker honours.
- The ``cluster_pipeline`` job is every asset with ``dagster-celery``'s executor: each step is a Celery
  task on the profile's queue; the workers (``orchestration.celery_worker``) run it against the same
  instance and the same shared filesystem (``HEPHAESTUS_HOME``).
- A worker killed mid-step leaves its task unacknowledged in Redis (``task_acks_late``); after
  ``visibility_timeout_s`` another worker takes it over and the step runs again from its start. A step
  writes its output atomically and its completion marker last, so nothing partial is ever visible.

``run_cluster`` launches a run (the orchestrating loop runs in the calling process) and
``step_workers`` reads back which worker ran each step.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    JobExecutionResult,
    ReexecutionOptions,
    define_asset_job,
    execute_job,
    reconstructable,
)
from dagster_celery import celery_executor

from assets.profile import REPO_ROOT, Profile, default_home, load_settings

CLUSTER_JOB = "cluster_pipeline"
#: the Celery engine event that names the worker running a step (dagster_celery.tasks)
_WORKER_KEY = "Celery worker"

POSTGRES_INSTANCE_YAML = """\
# Written by orchestration.cluster for dagster.instance: postgres. The server and its password come
# from the environment (DAGSTER_PG_HOST, _PORT, _USERNAME, _PASSWORD, _DB), never from this file.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      hostname: {env: DAGSTER_PG_HOST}
      port: {env: DAGSTER_PG_PORT}
      username: {env: DAGSTER_PG_USERNAME}
      password: {env: DAGSTER_PG_PASSWORD}
      db_name: {env: DAGSTER_PG_DB}
      scheme: postgresql+psycopg2   # SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3
concurrency:
  pools:
    # duckdb_writer: dbt is the warehouse's only writer; trainer: one training job at a time.
    default_limit: 1
"""


class ClusterConfigError(RuntimeError):
    """The environment lacks what the profile needs (a variable unset): said before any step runs."""


def settings_of(profile: str) -> Profile:
    return load_settings(profile)


def cluster_home(profile: str) -> Path:
    """The profile's state directory on the shared filesystem (``HEPHAESTUS_HOME``/``paths.home``)."""
    return default_home(settings_of(profile).paths.home)


def dagster_home(profile: str) -> Path:
    return cluster_home(profile) / settings_of(profile).name / "dagster_home"


def ensure_instance(profile: str) -> Path:
    """Write ``dagster.yaml`` for the profile's instance into its ``DAGSTER_HOME`` and point
    ``DAGSTER_HOME`` there; returns it. A local instance keeps ``orchestration.instance``'s file."""
    settings = settings_of(profile)
    home = dagster_home(profile)
    home.mkdir(parents=True, exist_ok=True)
    if settings.dagster.instance == "postgres":
        from contracts.io import atomic_write_text

        atomic_write_text(home / "dagster.yaml", POSTGRES_INSTANCE_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
        return home
    from orchestration.instance import ensure_dagster_home

    os.environ["DAGSTER_HOME"] = str(home)
    return ensure_dagster_home()


def worker_environment(profile: str) -> dict[str, str]:
    """What a Celery worker needs besides the services' URLs: the profile, the shared home, the
    instance's directory, the code, and telemetry off. Not ``TOKENIZERS_PARALLELISM=false``: a step's
    tokenizer training and shard packing would run on one core (the tests set it for themselves)."""
    return {
        "HEPHAESTUS_PROFILE": profile,
        "HEPHAESTUS_HOME": str(cluster_home(profile)),
        "DAGSTER_HOME": str(ensure_instance(profile)),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def required_environment(settings: Profile) -> list[str]:
    names = []
    if settings.dagster.instance == "postgres":
        names += [f"DAGSTER_PG_{k}" for k in ("HOST", "PORT", "USERNAME", "PASSWORD", "DB")]
    if settings.dagster.executor == "celery":
        names += [settings.dagster.celery.broker_env, settings.dagster.celery.backend_env]
        if not settings.tracking.uri:
            names.append("MLFLOW_TRACKING_URI")
    return names


def check_environment(settings: Profile) -> None:
    missing = [name for name in required_environment(settings) if not os.environ.get(name)]
    if missing:
        raise ClusterConfigError(
            f"profile {settings.name!r} needs {', '.join(missing)} in the environment "
            "(`make services` writes them to $HEPHAESTUS_HOME/services/services.env; on a cluster, your "
            "PostgreSQL, broker and MLflow server)"
        )


def celery_settings(settings: Profile) -> dict[str, Any]:
    """The Celery app's configuration, the same for the workers and the run that submits to them.

    Late acknowledgement: a task is acknowledged when its step has finished, so a worker killed
    mid-step leaves it in the broker; Redis hands it to another worker after the visibility timeout
    (swept every ``restore_interval_s`` by the idle workers)."""
    celery = settings.dagster.celery
    transport = {
        "visibility_timeout": celery.visibility_timeout_s,
        "unacked_restore_interval": celery.restore_interval_s,
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": os.environ.get(celery.broker_env),
        "result_backend": os.environ.get(celery.backend_env),
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": celery.visibility_timeout_s},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": celery.queue,
        "task_default_priority": 5,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def run_config(settings: Profile) -> dict[str, Any]:
    """The run's executor configuration (the URLs as ``env`` sources: never in the run's record)."""
    celery = settings.dagster.celery
    source = {k: v for k, v in celery_settings(settings).items() if k not in ("broker_url", "result_backend")}
    return {
        "execution": {
            "config": {
                "broker": {"env": celery.broker_env},
                "backend": {"env": celery.backend_env},
                "config_source": source,
            }
        }
    }


@lru_cache(maxsize=1)
def _cluster_definitions() -> Definitions:
    from orchestration.definitions import defs

    job = define_asset_job(
        CLUSTER_JOB,
        selection=AssetSelection.all(),
        executor_def=celery_executor,
        description="Every asset, each step a task on a Celery worker (the cluster profiles).",
    )
    return Definitions.merge(defs, Definitions(jobs=[job]))


def cluster_pipeline():
    """The celery job, resolved with the project's resources (the target of ``reconstructable``:
    workers rebuild the job by importing this module and calling this function)."""
    return _cluster_definitions().resolve_job_def(CLUSTER_JOB)


def run_cluster(
    profile: str,
    instance: DagsterInstance,
    selection: list[AssetKey] | None = None,
    from_failure_of: str | None = None,
    tags: dict[str, str] | None = None,
) -> JobExecutionResult:
    """Materialize ``selection`` (None: everything) on the Celery workers; or re-execute the failed
    steps of run ``from_failure_of``. The orchestrating loop runs here; the steps on the workers."""
    settings = settings_of(profile)
    check_environment(settings)
    os.environ["HEPHAESTUS_PROFILE"] = profile
    reexecution = ReexecutionOptions.from_failure(from_failure_of, instance) if from_failure_of else None
    return execute_job(
        reconstructable(cluster_pipeline),
        instance=instance,
        run_config=None if reexecution else run_config(settings),
        tags=tags,
        raise_on_error=False,
        asset_selection=None if reexecution else selection,
        reexecution_options=reexecution,
    )


def step_workers(instance: DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the Celery workers (``name@host``) that ran it, in order (a step taken over after
    its worker died lists both)."""
    out: dict[str, list[str]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT" or not event.step_key:
            continue
        worker = event.engine_event_data.metadata.get(_WORKER_KEY)
        if worker is not None:
            out.setdefault(event.step_key, []).append(str(worker.value))
    return out
