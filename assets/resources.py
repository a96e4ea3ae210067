"""Dagster resources: the profile (paths + typed configuration) and MLflow tracking."""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from typing import Any

from dagster import ConfigurableResource

from assets.profile import Paths, Profile, default_home, load_profile, resolve_repo_path


@lru_cache(maxsize=8)
def _cached_profile(name: str) -> dict[str, Any]:
    """Profiles are read (and checked) once per process (a resource is a frozen config object: no
    state on it)."""
    return load_profile(name)


@lru_cache(maxsize=8)
def _cached_settings(name: str) -> Profile:
    return Profile.model_validate(_cached_profile(name))


class ForgeResource(ConfigurableResource):
    """The active profile. ``profile``/``home`` fall back to ``HEPHAESTUS_PROFILE`` /
    ``HEPHAESTUS_HOME`` when left unset — read when a run starts, never at import time."""

    profile: str | None = None
    home: str | None = None

    @property
    def profile_name(self) -> str:
        return self.profile or os.environ.get("HEPHAESTUS_PROFILE") or "default"

    @property
    def settings(self) -> Profile:
        """The typed profile: one model per section (immutable)."""
        return _cached_settings(self.profile_name)

    @property
    def config(self) -> dict[str, Any]:
        """The profile as merged from its YAML files (checked), for loaders that read sections
        themselves (``training.config``)."""
        return copy.deepcopy(_cached_profile(self.profile_name))

    @property
    def paths(self) -> Paths:
        home = resolve_repo_path(self.home) if self.home else default_home(self.settings.paths.home)
        return Paths(home=home, profile=self.settings.name)

    def dbt_vars(self) -> dict[str, Any]:
        wh = self.settings.warehouse
        return {
            "heldout_providers": list(self.settings.sources.heldout_providers),
            "allowed_licenses": list(wh.allowed_licenses),
            "decontam_ngram": wh.decontam_ngram,
            "validation_pct": wh.validation_pct,
            # dbt reads raw.retrieval_scores only when the profile runs the retrieval stage
            "retrieval_enabled": self.settings.retrieval.enabled,
        }

    def export_environment(self) -> None:
        """Point dbt (a subprocess that reads env vars in profiles.yml/sources) at this profile."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        os.environ["HEPHAESTUS_DATA_DIR"] = str(self.paths.data)
        os.environ["HEPHAESTUS_WAREHOUSE"] = str(self.paths.warehouse)

    def dbt_vars_json(self) -> str:
        return json.dumps(self.dbt_vars(), sort_keys=True)


class MlflowResource(ConfigurableResource):
    """MLflow on the profile's store (SQLite by default). ``tracking_uri`` overrides it, e.g. an
    ``mlflow server`` on 127.0.0.1 when several processes log at once, or Postgres in ``cluster``
    (also settable as the profile's ``tracking.uri``)."""

    tracking_uri: str | None = None
    experiment: str | None = None

    def resolve(self, forge: ForgeResource) -> tuple[str, str]:
        uri = (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or forge.settings.tracking.uri
            or forge.paths.tracking_uri
        )
        experiment = self.experiment or f"hephaestus-{forge.paths.profile}"
        return uri, experiment
