"""One way to turn a library stage into an asset body: fingerprint, skip when fresh, run, report.

A stage's fingerprint folds in everything its output depends on: the stage's name, its typed
configuration (less the speed-only settings), every input handed to ``run`` (the ``io`` keyword
arguments, as data), the fingerprints of upstream outputs (their completion markers), the content
of warehouse tables it reads, the digests of local source files, extra digests the caller names
(an installed environment, a crawl period), and the code: the digest of the stage module's import
closure (:func:`forge.core.stage.code_fingerprint`). Change any of them and the asset rebuilds;
change nothing and it reports ``up_to_date``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult

from assets.common import materialize_stage
from forge.core.io import file_digest, fingerprint
from forge.core.markers import upstream_fingerprint
from forge.core.stage import Stage, StageConfig
from forge.core.warehouse import table_fingerprint


def input_fingerprint(
    *,
    code: str,
    config: StageConfig | dict[str, Any] | None = None,
    io: dict[str, Any] | None = None,
    upstream: Iterable[Path] = (),
    warehouse: Path | None = None,
    tables: Sequence[str] = (),
    sources: Iterable[Path] = (),
    extras: Sequence[Any] = (),
) -> str:
    """The digest of an output's inputs; ``code`` is a code fingerprint (of a stage or of the
    library entry module an asset calls)."""
    if tables and warehouse is None:
        raise ValueError("table fingerprints need the warehouse path")
    settings = config.fingerprint_fields() if isinstance(config, StageConfig) else config
    return fingerprint(
        settings,
        io or {},
        [upstream_fingerprint(d) for d in upstream],
        [table_fingerprint(warehouse, t) for t in tables] if warehouse is not None else [],
        [file_digest(s) for s in sources],
        list(extras),
        code,
    )


def stage_asset(
    context: AssetExecutionContext,
    stage: Stage,
    config: StageConfig,
    out_dir: Path,
    *,
    upstream: Iterable[Path] = (),
    warehouse: Path | None = None,
    tables: Sequence[str] = (),
    sources: Iterable[Path] = (),
    extras: Sequence[Any] = (),
    then: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    **io: Any,
) -> MaterializeResult:
    """Run ``stage.run(config, out_dir=out_dir, **io)`` unless ``out_dir`` is fresh for the
    fingerprint of its inputs (see the module docstring); write the completion marker and report
    the stage's metadata. ``warehouse``, when given, is also passed to ``run``. ``then`` runs after
    the stage on its metadata (a follow-up write into ``out_dir``) and returns the metadata to report."""
    if warehouse is not None:
        io["warehouse"] = warehouse
    fp = input_fingerprint(
        code=stage.code_fingerprint(),
        config=config,
        io={"stage": stage.name, **io},
        upstream=upstream,
        warehouse=warehouse,
        tables=tables,
        sources=sources,
        extras=extras,
    )

    def build() -> dict[str, Any]:
        meta = stage.run(config, out_dir=out_dir, **io)
        return then(meta) if then is not None else meta

    return materialize_stage(context, out_dir, fp, build)
