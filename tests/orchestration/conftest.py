"""The real services of the cluster profiles (PostgreSQL, Redis, MLflow server, 2 Celery workers) on
127.0.0.1, started once for the module that asks for them and stopped after it.

Without the Debian binaries the tests that need them skip, saying how to install them; CI sets
``HEPHAESTUS_REQUIRE_SERVICES=1`` (after ``make services-install``), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

#: a step whose worker dies is handed on after this many seconds (kept above every step it runs)
VISIBILITY_TIMEOUT_S = 20


@dataclass
class Cluster:
    services: object
    profile: str
    worker_env: dict[str, str]


@pytest.fixture(scope="module")
def cluster():
    from orchestration.services import Services, missing_binaries

    missing = missing_binaries()
    if missing:
        reason = f"cluster services need {', '.join(missing)}: run `make services-install` (apt-get, as root)"
        if os.environ.get("HEPHAESTUS_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " — HEPHAESTUS_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(reason)

    # PostgreSQL runs as the postgres user when we are root: its directory must be searchable by it
    root = Path(tempfile.mkdtemp(prefix="hephaestus-cluster-"))
    root.chmod(0o711)
    profile = root / "cluster_test.yaml"
    profile.write_text(
        "extends: cluster_micro\nname: cluster_test\n"
        f"dagster: {{celery: {{visibility_timeout_s: {VISIBILITY_TIMEOUT_S}, restore_interval_s: 1}}}}\n"
    )
    saved = dict(os.environ)
    os.environ["HEPHAESTUS_HOME"] = str(root / "home")
    os.environ["HEPHAESTUS_PROFILE"] = str(profile)
    services = Services(root / "services")
    try:
        from orchestration.cluster import worker_environment

        env = worker_environment(str(profile))
        services.start(root / "home" / "mlflow-artifacts", env, n_workers=2)
        os.environ.update(env)
        os.environ.update(services.env())
        yield Cluster(services=services, profile=str(profile), worker_env=env)
    finally:
        services.stop()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
