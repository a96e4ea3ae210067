"""MLflow glue for assets: one MLflow run per training/evaluation asset materialization.

The asset creates the run (so it exists even if a subprocess dies before logging), tags it with
the Dagster run id and asset key, logs the input datasets with their digests, and hands the run
id to the training subprocess, which logs params, per-step metrics and artifacts into it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str) -> str:
    """Create (once) the store and the experiment; return its id. Call before parallel steps:
    SQLite stores migrate their schema on first use and two first-time writers collide."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    init_store(tracking_uri, artifact_root)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    Path(artifact_root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=f"{artifact_root}/{name}")


def init_store(tracking_uri: str, artifact_root: str) -> None:
    """Create a database store with its default artifact root inside the profile.

    A store first opened by ``MlflowClient`` gets MLflow's default root, ``./mlruns`` of whatever the
    working directory was, and its "Default" experiment points there forever; opening it once
    ourselves with ``artifact_root`` puts every location under the profile. Servers (``http``) keep
    their own root; an existing store is left alone (creation is idempotent).
    """
    if not tracking_uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return
    if tracking_uri.startswith("sqlite:///") and Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    Path(artifact_root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    SqlAlchemyStore(tracking_uri, artifact_root)


def create_run(tracking_uri: str, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri).create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def dataset_input(name: str, source: str, digest: str, summary: dict[str, Any]):
    """An MLflow dataset entry for an input (a mart, a shard directory) with our own digest."""
    import mlflow

    df = pd.DataFrame([{k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in summary.items()}])
    return mlflow.data.from_pandas(df, source=source, name=name, digest=digest[:36])


@contextmanager
def active_run(tracking_uri: str, run_id: str):
    """Resume ``run_id``; mark it FAILED if the body raises, FINISHED otherwise."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.start_run(run_id=run_id)
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def mark_failed(tracking_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_run(run_id).info.status != "FAILED":
        client.set_terminated(run_id, status="FAILED")
