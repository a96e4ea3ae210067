"""Profiles: YAML files under ``orchestration/profiles/`` (micro, default, gpu, cluster).

A profile is configuration, never code: the same assets run under each. ``extends`` merges a
profile over another (dicts deep-merged, everything else replaced). Paths are resolved here, at
run time — nothing reads the environment at import time.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "orchestration" / "profiles"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_profile(name_or_path: str) -> dict[str, Any]:
    """Load a profile by name (``orchestration/profiles/<name>.yaml``) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"profile {name_or_path!r} not found ({path}); known profiles: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    parent = data.pop("extends", None)
    if parent:
        data = deep_merge(load_profile(parent), data)
    return data


#: A profile path naming Debian's Python 3.11 HTML docs wherever they are: the installed
#: ``python3.11-doc`` or the copy ``make pydocs`` extracts under ``$HEPHAESTUS_HOME/cache``
#: (see :mod:`forge.crawler.pydocs`); neither there, the system path, whose absence is a counted skip.
PYTHON_DOCS = "python3.11-doc"


def resolve_repo_path(value: str | None) -> Path | None:
    """Relative paths in profiles are relative to the repository root; ``python3.11-doc``
    (:data:`PYTHON_DOCS`) is the Python 3.11 HTML docs' directory, looked up when called."""
    if value is None:
        return None
    if value == PYTHON_DOCS:
        from forge.crawler.pydocs import SYSTEM_PYTHON_DOCS, python_docs_dir

        return python_docs_dir() or SYSTEM_PYTHON_DOCS
    p = Path(value).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


@dataclass(frozen=True)
class Paths:
    """Where one profile's state lives: ``<home>/<profile>/...``; downloads are shared in ``<home>/cache``."""

    home: Path
    profile: str

    @property
    def root(self) -> Path:
        return self.home / self.profile

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def raw(self, table: str) -> Path:
        return self.data / "raw" / table

    @property
    def corpus(self) -> Path:
        return self.data / "corpus"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()


def default_home() -> Path:
    return Path(os.environ.get("HEPHAESTUS_HOME") or REPO_ROOT / ".hephaestus").resolve()
