"""Model cards and TorchHub entry points as a stage -> raw.hub_doc_operations.

:class:`HubDocsConfig` is the profile's ``sources.hub_docs`` section: a local folder of cards and
``hubconf.py`` files, and live downloads through the crawler's guarded fetcher when configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.io import write_parquet
from forge.core.report import finish_ingest
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats


class HubDocsConfig(StageConfig):
    """``sources.hub_docs``: where the model cards and hubconf.py files come from."""

    #: a folder with ``hf/<org>__<name>/README.md`` cards and ``torchhub/<owner>__<repo>/hubconf.py``
    local_dir: str | None = None
    #: Hugging Face model ids whose cards are downloaded (needs network)
    hf_models: list[str] = []
    #: ``owner/repo`` TorchHub repositories whose hubconf.py is downloaded (needs network)
    torchhub_repos: list[str] = []


def hub_doc_rows(cfg: HubDocsConfig, stats: StepStats) -> Iterator[dict[str, Any]]:
    """API rows of the local folder's cards and entry points, then of the configured downloads."""
    from forge.sources.hub.cards import fetch_hub_docs, iter_local_hub_docs

    if cfg.local_dir:
        yield from iter_local_hub_docs(Path(cfg.local_dir), stats)
    if cfg.hf_models or cfg.torchhub_repos:
        yield from fetch_hub_docs(cfg.hf_models, cfg.torchhub_repos, stats=stats)


def ingest_hub_docs(cfg: HubDocsConfig, *, out_dir: Path) -> dict[str, Any]:
    """Model cards and TorchHub entry points -> ``out_dir/hub_docs.parquet`` (raw.hub_doc_operations)."""
    stats = StepStats("hub_docs")
    n = write_parquet(out_dir / "hub_docs.parquet", hub_doc_rows(cfg, stats), schemas.API_OPERATIONS)
    return finish_ingest("hub_doc_operations", out_dir, n, [stats])


HUB_STAGE = Stage("hub_doc_operations", HubDocsConfig, ingest_hub_docs)
