"""Public function-calling datasets as a stage -> raw.dataset_trajectories.

:class:`DatasetSpec` is one entry of the profile's ``sources.datasets`` list; the stage's
configuration is that list plus the license allow-list (``warehouse.allowed_licenses``, whose
default lives with the warehouse section).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from forge.core.stage import Stage, StageConfig


class DatasetSpec(StageConfig):
    """One dataset: its name, its format and exactly one of ``path`` / ``url`` / ``hub_id``."""

    #: unique among the datasets; names the output part and ``source`` of its rows
    name: str
    #: one of ``forge.sources.datasets.registry.FORMATS`` (or an alias)
    format: str
    #: a local file or directory (relative to the repository root)
    path: str | None = None
    #: a file to download into the cache
    url: str | None = None
    #: a dataset repository on the hub (downloaded into the cache)
    hub_id: str | None = None
    #: the hub revision to pin
    revision: str | None = None
    #: the split's file-name fragment to read (e.g. ``train``)
    split: str | None = None
    #: the license every row carries (checked against the allow-list)
    license: str | None = None
    #: stop after this many records
    max_rows: int | None = None
    #: a JSONL line longer than this is a counted ``max_row_bytes`` skip (None: the default, 8 MiB)
    max_row_bytes: int | None = Field(default=None, gt=0)
    #: a whole-file JSON larger than this is a counted ``max_file_bytes`` skip (None: 1 GiB)
    max_file_bytes: int | None = Field(default=None, gt=0)

    def as_spec(self) -> dict[str, Any]:
        """The plain spec ``forge.sources.datasets.ingest`` reads (unset keys left out)."""
        return self.model_dump(exclude_none=True)


class DatasetsConfig(StageConfig):
    """Every configured dataset and the licenses allowed into training (``["*"]``: all)."""

    datasets: list[DatasetSpec]
    allowed_licenses: list[str]


def ingest_dataset_trajectories(cfg: DatasetsConfig, *, out_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """Public function-calling datasets (xLAM, ToolACE, Glaive, ToolBench, OpenAI, ShareGPT formats)
    mapped to the normalized trajectory schema, rejects counted by reason; downloads land in
    ``cache_dir``."""
    from forge.sources.datasets.ingest import ingest_datasets

    return ingest_datasets(
        [spec.as_spec() for spec in cfg.datasets],
        out_dir,
        allowed_licenses=list(cfg.allowed_licenses),
        cache_dir=cache_dir,
    )


DATASETS_STAGE = Stage("dataset_trajectories", DatasetsConfig, ingest_dataset_trajectories)
