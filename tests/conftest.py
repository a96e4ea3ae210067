"""Test-wide environment: telemetry off, hub offline, no GPU assumptions."""

import os

for key, value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
}.items():
    os.environ.setdefault(key, value)


import pytest  # noqa: E402

# Read once, before any test points HEPHAESTUS_HOME at a temporary home.
_HOME = os.environ.get("HEPHAESTUS_HOME")


@pytest.fixture(scope="session")
def bfcl_environments(tmp_path_factory):
    """The multi-turn environment classes, unpacked from the bfcl-eval wheel that `make test` downloads
    into ``$HEPHAESTUS_HOME/cache`` (never installed). Without the wheel the test skips, or fails when
    ``HEPHAESTUS_REQUIRE_BFCL_WHEEL=1`` (CI)."""
    from pathlib import Path

    from evaluation.bfcl.data import extract_environment_source

    home = Path(_HOME or Path(__file__).resolve().parents[1] / ".hephaestus")
    wheels = sorted((home / "cache").glob("bfcl_eval-*.whl"))
    if not wheels:
        message = f"no bfcl-eval wheel in {home / 'cache'} (make test downloads it)"
        if os.environ.get("HEPHAESTUS_REQUIRE_BFCL_WHEEL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return extract_environment_source(wheels[-1], tmp_path_factory.mktemp("bfcl_envs"))
