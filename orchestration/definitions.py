"""The Dagster Definitions: every domain's assets and checks, jobs, the weekly schedule, resources."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    PipesSubprocessClient,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)
from dagster_dbt import DbtCliResource

from assets.corpus import corpus_assets
from assets.evaluation import evaluation_assets, evaluation_checks
from assets.ingest import API_TABLES, ingest_assets, raw_key
from assets.profile import load_settings
from assets.quality import gx_checks
from assets.research import research_assets
from assets.resources import ForgeResource, MlflowResource
from assets.training import training_assets
from assets.warehouse import build_dbt_assets, dbt_project
from orchestration.automation import with_policies
from orchestration.sensors import NpmRegistryResource, sensors
from orchestration.sensors import jobs as sensor_jobs

warehouse_models = build_dbt_assets()
# owners and automation conditions per asset: orchestration.automation
all_assets = with_policies(
    [
        *ingest_assets,
        warehouse_models,
        *corpus_assets,
        *training_assets,
        *evaluation_assets,
        *research_assets,
    ]
)

# Everything, in one process: the embedded run of `make demo` (2 cores; no process start-up per step).
full_pipeline = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    description="Every asset, from the API crawl to the registered model. Finished work is skipped "
    "(fingerprints), so rerunning it rebuilds only what is stale.",
)

# The weekly rebuild: re-crawl the sources and everything downstream of them; unchanged inputs
# leave every downstream fingerprint unchanged, so only stale work is redone.
weekly_rebuild = define_asset_job(
    "weekly_rebuild",
    selection=AssetSelection.keys(
        *(raw_key(t) for t in API_TABLES),
        raw_key("documents"),
        raw_key("web_docs_operations"),
        raw_key("code_documents"),
        raw_key("text_documents"),
        raw_key("bfcl_items"),
    ).downstream(),
    executor_def=in_process_executor,
)

weekly_rebuild_schedule = ScheduleDefinition(
    name="weekly_rebuild_schedule",
    job=weekly_rebuild,
    cron_schedule="0 3 * * 1",  # Mondays 03:00
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Rebuild the crawl and everything downstream once a week (turn on in the UI).",
)


def executor_settings(profile: str) -> tuple[str, dict[str, int]]:
    """What runs the steps of a run launched from the UI or the CLI: the profile's ``dagster.executor``
    and its config (``multiprocess``: steps in their own processes, ``max_concurrent`` at once;
    ``in_process``: one process, no start-up per step, as the micro profile's runs want; ``celery``:
    the ``cluster_pipeline`` job carries that executor, so other jobs fall back to multiprocess)."""
    cfg = load_settings(profile).dagster
    if cfg.executor == "in_process":
        return "in_process", {}
    return "multiprocess", {"max_concurrent": cfg.max_concurrent}


def _default_executor(profile: str):
    name, config = executor_settings(profile)
    return in_process_executor if name == "in_process" else multiprocess_executor.configured(config)


def _dbt_executable() -> str:
    local = Path(sys.executable).with_name("dbt")
    return str(local) if local.exists() else (shutil.which("dbt") or "dbt")


defs = Definitions(
    assets=all_assets,
    asset_checks=[*gx_checks, *evaluation_checks],
    jobs=[full_pipeline, weekly_rebuild, *sensor_jobs],
    schedules=[weekly_rebuild_schedule],
    sensors=sensors,
    # Materializations launched from the UI: the profile's executor (default: separate processes, two
    # at a time, for 2 cores); the dbt assets sit in the `duckdb_writer` pool and the trainers in `trainer`.
    executor=_default_executor(os.environ.get("HEPHAESTUS_PROFILE") or "default"),
    resources={
        "profile": ForgeResource(),
        "mlflow": MlflowResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=_dbt_executable()),
        "pipes_subprocess_client": PipesSubprocessClient(),
        "npm_registry": NpmRegistryResource(),
    },
)
