"""Profiles: YAML files under ``orchestration/profiles/`` (micro, default, gpu, cluster).

A profile is configuration, never code: the same assets run under each. ``extends`` merges a
profile over another (dicts deep-merged, everything else replaced). The merged mapping is checked
against :class:`Profile` when it is loaded: one strict model per section, so an unknown or
misspelled key is a :class:`ProfileError` naming the key, its section and the file it is in. A
section that feeds one library stage is that stage's configuration class (its defaults are the only
ones); ``model`` and ``training`` are read by ``training``'s own loader, which checks them here too.

Paths are resolved here, at run time — nothing reads the environment at import time.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from evaluation.config import EvaluationConfig
from evaluation.promotion import PromotionConfig
from forge.checks_drift import DriftConfig
from forge.corpus.mixtures import MixtureConfig
from forge.corpus.tokenizer import TokenizerConfig
from forge.sources.bfcl import BfclSourceConfig
from forge.sources.datasets.inbox import DatasetInboxConfig
from forge.sources.datasets.stage import DatasetSpec
from forge.sources.general import CodeSourceConfig, TextSourceConfig
from forge.sources.hub.stage import HubDocsConfig
from forge.sources.openapi.stage import OpenApiConfig
from forge.sources.python.stage import PythonIntrospectionConfig
from forge.sources.webdocs import CrawlSpec
from forge.synth.stage import SynthesisConfig
from forge.text.dedup import NearDedupConfig
from forge.text.retrieval import RetrievalConfig
from training.research import ResearchConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "orchestration" / "profiles"


class ProfileError(ValueError):
    """A profile that does not match its model: the message names the file, the section and the key."""


class _Section(BaseModel):
    """A section read by the assets themselves (not one stage's configuration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourcesSection(_Section):
    """``sources``: what is ingested, and which providers are held out of training."""

    openapi: OpenApiConfig = OpenApiConfig()
    #: providers never trained on: their APIs feed the unseen-API benchmark only
    heldout_providers: list[str] = []
    #: modules to introspect: names, ``stdlib``, or ``pkg.*``
    python_modules: list[str] = []
    python_introspection: PythonIntrospectionConfig = PythonIntrospectionConfig()
    code: CodeSourceConfig = CodeSourceConfig()
    text: TextSourceConfig = TextSourceConfig()
    bfcl: BfclSourceConfig = BfclSourceConfig()
    datasets: list[DatasetSpec] = []
    crawl: list[CrawlSpec] = []
    #: how often the crawl's fingerprint turns over (a re-crawl): ISO week, day, or every run
    recrawl_every: Literal["week", "day", "always"] = "week"
    hub_docs: HubDocsConfig = HubDocsConfig()
    #: a watched folder of dataset files (``<dir>/<format>/<file>``; dir None: ``<profile home>/inbox``)
    dataset_inbox: DatasetInboxConfig = DatasetInboxConfig()


class WarehouseSection(_Section):
    """``warehouse``: the dbt variables, and the quality bar shared by ingest and the GX checks."""

    #: n-gram length of the BFCL decontamination
    decontam_ngram: int = 8
    #: share of documents (percent) in the validation split
    validation_pct: int = 2
    #: licenses allowed into training (``*``: all)
    allowed_licenses: list[str] = ["*"]
    #: documents shorter than this many characters are dropped (ingest) and fail the checks
    min_chars: int = 50


class QualitySection(_Section):
    """``quality``: the Great Expectations checks on the marts (drift against the last passing run)."""

    drift: DriftConfig = DriftConfig()


class MixtureSection(_Section):
    """``mixture``: the two continual pre-training mixtures."""

    stage1: MixtureConfig
    stage2: MixtureConfig


class RegistryConfig(_Section):
    """``registry``: the MLflow registered model the scorecard registers the SFT model under, and
    the rule that promotes a new version to ``champion``."""

    model_name: str = "hephaestus-sft"
    #: when the ``challenger`` alias replaces the ``champion`` (the scorecard's promotion check)
    promotion: PromotionConfig = PromotionConfig()


class PathsConfig(_Section):
    """``paths``: where the profile's state lives (None: ``HEPHAESTUS_HOME``, else ``.hephaestus``)."""

    home: str | None = None


class TrackingConfig(_Section):
    """``tracking``: the MLflow tracking URI (None: ``MLFLOW_TRACKING_URI``, else SQLite under the home)."""

    uri: str | None = None


class CeleryConfig(_Section):
    """``dagster.celery``: the Celery workers that run the steps. The broker and result-backend URLs
    carry a password, so the profile names the environment variables that hold them."""

    broker_env: str = "HEPHAESTUS_CELERY_BROKER"
    backend_env: str = "HEPHAESTUS_CELERY_BACKEND"
    queue: str = "dagster"
    #: seconds after which a step whose worker vanished (kill -9, a lost node) goes to another worker;
    #: Redis hands on *any* step unacknowledged this long, so it must exceed the longest step
    visibility_timeout_s: int = 7200
    #: how often (s) an idle worker looks for such steps
    restore_interval_s: int = 10


class DagsterConfig(_Section):
    """``dagster``: where the instance keeps runs and events, and what executes the steps.

    ``instance: postgres`` is ``dagster-postgres`` (runs, event log, schedules) on the server the
    ``DAGSTER_PG_*`` variables name; ``executor: celery`` is ``dagster-celery`` (each step a task on a
    worker). Steps on other machines need a shared instance: Celery on a local (SQLite) instance is
    refused when the profile loads."""

    instance: Literal["local", "postgres"] = "local"
    executor: Literal["in_process", "multiprocess", "celery"] = "in_process"
    #: steps at once (multiprocess), or Celery workers `make services` starts (celery)
    max_concurrent: int = 2
    celery: CeleryConfig = CeleryConfig()

    @model_validator(mode="after")
    def _shared_instance(self) -> DagsterConfig:
        if self.executor == "celery" and self.instance != "postgres":
            raise ValueError(
                "executor 'celery' needs instance 'postgres': workers on other machines cannot share "
                "a local SQLite instance"
            )
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        return self


class Profile(_Section):
    """A whole profile, every section typed."""

    name: str
    sources: SourcesSection = SourcesSection()
    synthesis: SynthesisConfig = SynthesisConfig()
    warehouse: WarehouseSection = WarehouseSection()
    #: near-duplicate removal over the corpus candidates (MinHash LSH)
    near_dedup: NearDedupConfig = NearDedupConfig()
    #: seed -> retrieval: the classifier that moves agent-like general documents into 'retrieved'
    retrieval: RetrievalConfig = RetrievalConfig()
    quality: QualitySection = QualitySection()
    tokenizer: TokenizerConfig = TokenizerConfig()
    mixture: MixtureSection
    #: read by ``training.config`` (checked there: unknown keys are errors too)
    model: dict[str, Any] = {}
    training: dict[str, Any] = {}
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    #: the recipe study: the ablation's arms and the mixing-ratio grid (off: a visible skip)
    research: ResearchConfig = ResearchConfig()
    paths: PathsConfig = PathsConfig()
    tracking: TrackingConfig = TrackingConfig()
    dagster: DagsterConfig = DagsterConfig()

    @model_validator(mode="after")
    def _tracking_takes_parallel_writers(self) -> Profile:
        uri = self.tracking.uri or ""
        if self.dagster.executor != "in_process" and uri.startswith("sqlite"):
            raise ValueError(
                f"tracking.uri {uri!r}: SQLite takes one writer, and executor {self.dagster.executor!r} "
                "runs steps in parallel processes; use an MLflow server (http://...) or postgresql://"
            )
        return self


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _profile_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"profile {name_or_path!r} not found ({path}); known profiles: {known}")
    return path


def _read_chain(name_or_path: str | Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The profile's file and those it extends, child first, each as written (``extends`` removed).
    A file that is not a mapping, a bad ``extends`` or a cycle of them is a :class:`ProfileError`."""
    path = _profile_path(name_or_path)
    if path.resolve() in seen:
        raise ProfileError(f"{_shown(path)}: 'extends' makes a cycle ({' -> '.join(p.name for p in seen)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{_shown(path)}: not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{_shown(path)}: a profile is a mapping of sections, not a {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is not None and not isinstance(parent, str):
        raise ProfileError(f"{_shown(path)}: 'extends' must name a profile or a file, not {parent!r}"[:300])
    return [(path, data), *(_read_chain(parent, (*seen, path.resolve())) if parent else [])]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out or "(top level)"


def _locate(data: Any, loc: tuple[Any, ...], keep_last: bool) -> tuple[tuple[Any, ...], bool]:
    """The part of a validation error's location found in ``data`` (pydantic adds the names of
    union members, which no file holds), and whether all of it was found. ``keep_last`` keeps a
    final key that is not there (a missing field)."""
    found: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            if keep_last and i == len(loc) - 1:
                found.append(part)
            return tuple(found), False
        found.append(part)
    return tuple(found), True


def _profile_error(
    chain: list[tuple[Path, dict[str, Any]]], merged: dict[str, Any], exc: ValidationError
) -> ProfileError:
    """One line per problem: the file that sets the offending value (the first in the extends chain
    holding it), the section path, and the unknown key or what is wrong with the value."""
    lines = []
    for err in exc.errors():
        unknown = err["type"] == "extra_forbidden"
        loc, _ = _locate(merged, tuple(err["loc"]), keep_last=err["type"] == "missing")
        owner = next((path for path, data in chain if _locate(data, loc, False)[1]), chain[0][0])
        if unknown:
            lines.append(f"{_shown(owner)}: {_where(loc[:-1])}: unknown key {loc[-1]!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{_shown(owner)}: {_where(loc)}: {msg}")
    return ProfileError("\n".join(lines))


def _check_training_sections(path: Path, model: dict[str, Any], training: dict[str, Any]) -> None:
    """``model``/``training`` are ``training.config``'s to check; its errors name the key."""
    from training.config import validate_profile_sections

    try:
        validate_profile_sections(model, training)
    except ValueError as exc:
        raise ProfileError(f"{_shown(path)}: {exc}") from exc


def load_profile(name_or_path: str | Path) -> dict[str, Any]:
    """The merged mapping of a profile by name (``orchestration/profiles/<name>.yaml``) or file
    path, after checking it against :class:`Profile` (a :class:`ProfileError` when it does not
    match). ``training.config`` reads its sections from this mapping."""
    chain = _read_chain(name_or_path)
    data: dict[str, Any] = {}
    for _, layer in reversed(chain):
        data = deep_merge(data, layer)
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise _profile_error(chain, data, exc) from None
    _check_training_sections(chain[0][0], profile.model, profile.training)
    return data


def load_settings(name_or_path: str | Path) -> Profile:
    """The typed profile (see :func:`load_profile`)."""
    return Profile.model_validate(load_profile(name_or_path))


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


def default_home(configured: str | None = None) -> Path:
    """``HEPHAESTUS_HOME``, else the profile's ``paths.home``, else ``.hephaestus`` in the repository."""
    chosen = os.environ.get("HEPHAESTUS_HOME") or (str(resolve_repo_path(configured)) if configured else None)
    return Path(chosen or REPO_ROOT / ".hephaestus").resolve()
