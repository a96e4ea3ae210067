"""Connectors for public function-calling datasets (xLAM/APIGen, ToolACE, Glaive v2, ToolBench,
OpenAI chat, ShareGPT with tool roles) -> normalized trajectory rows. See ``ingest`` for the
entry points and ``registry`` for the format names."""

from forge.sources.datasets.ingest import (
    DATASET_TRAJECTORIES,
    ingest_datasets,
    iter_dataset_trajectories,
    license_allowed,
)
from forge.sources.datasets.registry import FORMATS, parser_for

__all__ = [
    "DATASET_TRAJECTORIES",
    "FORMATS",
    "ingest_datasets",
    "iter_dataset_trajectories",
    "license_allowed",
    "parser_for",
]
