"""Browser tests: Playwright driving Debian's ``chromium`` (headless, loopback only) against the two
servers ``make ui`` starts (``python -m orchestration.ui``) on one `micro` profile home shared by the
module. Playwright's own browser download is never used (``executable_path`` = the system binary).

Without chromium or the ``playwright`` package the tests skip saying why; CI sets
``HEPHAESTUS_REQUIRE_BROWSER=1`` (``.ci/run``) and there a missing browser is a failure.
Screenshots go to ``$HEPHAESTUS_SCREENSHOTS`` when set, else to the test run's temporary directory.

The servers fixture hands the UIs over only once they can show what the tests look for: Dagster's code
location loaded and MLflow answering with the seeded versions, aliases and loss curve; Dagster's
first-visit "Join the community" dialog is marked seen in the instance, so no dialog pops up over a
button at a moment nobody chose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _missing(reason: str):
    if os.environ.get("HEPHAESTUS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (HEPHAESTUS_REQUIRE_BROWSER=1: the browser tests must run here)")
    pytest.skip(f"{reason}; `make test` installs Debian's chromium where apt is available")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    _missing("no chromium on PATH (Debian package `chromium`)")


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            # root in a container has no user namespace sandbox; loopback only is enforced by the URLs
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """``item.rep_call``: the page fixture screenshots a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    configured = os.environ.get("HEPHAESTUS_SCREENSHOTS")
    out = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _json(url: str, query: str | None = None) -> dict:
    """GET ``url`` (or POST a GraphQL ``query`` to it); ``{}`` while the server cannot answer."""
    data = json.dumps({"query": query}).encode() if query else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return {}


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _dagster_ready(url: str) -> bool:
    """Every code location loaded (the asset graph and the schedule exist); one that failed to load
    fails the tests here, with its error."""
    entries = (
        _json(f"{url}/graphql", LOCATIONS).get("data", {}).get("workspaceOrError", {}).get("locationEntries")
    )
    if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
        return False
    for entry in entries:
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") != "RepositoryLocation":
            pytest.fail(
                f"Dagster code location {entry['name']} did not load: {loaded.get('message', loaded)}"
            )
    return True


def _mlflow_ready(url: str, seeded: dict) -> bool:
    """The server answers with what seed.py wrote: both versions, both aliases, the loss curve."""
    api = f"{url}/api/2.0/mlflow"
    name = urllib.parse.quote(seeded["model_name"])
    versions = _json(
        f"{api}/model-versions/search?filter=" + urllib.parse.quote(f"name='{seeded['model_name']}'")
    )
    found = {v["version"] for v in versions.get("model_versions", [])}
    model = _json(f"{api}/registered-models/get?name={name}").get("registered_model", {})
    aliases = {a["alias"] for a in model.get("aliases", [])}
    artifacts = _json(f"{api}/artifacts/list?run_id={seeded['training_run_id']}").get("files", [])
    return (
        set(seeded["versions"]) <= found
        and {"champion", "challenger"} <= aliases
        and any(f["path"] == "loss_curve.png" for f in artifacts)
    )


@pytest.fixture(scope="module")
def micro_home(tmp_path_factory):
    """A `micro` profile home with what the UIs show: the MLflow store seeded by registry_seed-style
    runs (two registered versions, a training run with its loss history and curve)."""
    home = tmp_path_factory.mktemp("ui_home")
    from assets.profile import Paths

    paths = Paths(home=home, profile="micro")
    from tests.ui.seed import seed_mlflow

    seeded = seed_mlflow(paths)
    return {"home": home, "paths": paths, **seeded}


@pytest.fixture(scope="module")
def servers(micro_home, chromium_path, tmp_path_factory):
    """``python -m orchestration.ui`` (what ``make ui`` runs) on free ports; stopped with SIGINT
    (Ctrl-C) at the end, and both servers must be gone."""
    dagster_port, mlflow_port = _free_port(), _free_port()
    dagster_home = tmp_path_factory.mktemp("ui_dagster_home")
    # what the dialog's "Skip" writes (dagster._core.nux): it would open 1 s after the first page load
    (dagster_home / ".nux").mkdir()
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    env = {
        **os.environ,
        "HEPHAESTUS_HOME": str(micro_home["home"]),
        "HEPHAESTUS_PROFILE": "micro",
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (tmp_path_factory.mktemp("ui_log") / "ui.log").open("w+")
    cmd = [sys.executable, "-m", "orchestration.ui", "--profile", "micro"]
    cmd += ["--dagster-port", str(dagster_port), "--mlflow-port", str(mlflow_port)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    urls = {"dagster": f"http://127.0.0.1:{dagster_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}"}
    deadline = time.monotonic() + 240
    text, ready = "", False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            text = log.read()
            ready = (
                "Both UIs are up" in text
                and _dagster_ready(urls["dagster"])
                and _mlflow_ready(urls["mlflow"], micro_home)
            )
            if ready:
                break
            time.sleep(0.5)
        if not ready:
            pytest.fail(f"make ui did not come up with the seeded data within 240 s:\n{text[-4000:]}")
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    yield {**urls, "printed": text, **micro_home}
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole foreground group
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    tail = log.read()[-3000:]
    assert rc == 0, tail
    assert "stopped." in tail, tail
    assert not _port_open(dagster_port) and not _port_open(mlflow_port), "a server outlived Ctrl-C"
