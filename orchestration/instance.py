"""The local Dagster instance (``DAGSTER_HOME``): created on first use with telemetry off and the
pools that protect single-writer stores (the DuckDB warehouse, one trainer at a time)."""

from __future__ import annotations

import os
from pathlib import Path

from assets.profile import default_home

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
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
