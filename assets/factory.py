"""One way to turn a library stage into an asset body: fingerprint, skip when fresh, run, report.

A stage's fingerprint folds in everything its output depends on: the stage's name, its typed
configuration (less the speed-only settings), every input handed to ``run`` (the ``io`` keyword
arguments, as data), the fingerprints of upstream outputs (their completion markers), the content
of warehouse tables it reads, the digests of local source files, extra digests the caller names
(an installed environment, a crawl period), and the code: the digest of the stage module's import
closure (:func:`forge.core.stage.code_fingerprint`). Change any of them and the asset rebuilds;
change nothing and it reports ``up_to_date``.

Paths in the settings, the inputs and the extras count by where they lie *within* the state home
(``HEPHAESTUS_HOME``) or the repository, not by their absolute location (:func:`portable`): a home moved
or copied elsewhere -- another disk, a GPU machine -- keeps its fingerprints and rebuilds nothing (a copy of
the demo's home used to rebuild 26 of its 28 Python assets).
"""

from __future__ import annotations

import os
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
    anchors = home_anchors()
    return fingerprint(
        portable(settings, anchors),
        portable(io or {}, anchors),
        [upstream_fingerprint(d) for d in upstream],
        [table_fingerprint(warehouse, t) for t in tables] if warehouse is not None else [],
        [file_digest(s) for s in sources],
        portable(list(extras), anchors),
        code,
    )


def home_anchors() -> list[tuple[str, str]]:
    """(absolute root, its token) for :func:`portable`: the state home first (it may lie in the repository)."""
    from assets.profile import REPO_ROOT, default_home

    return [(str(default_home()), "$HEPHAESTUS_HOME"), (str(REPO_ROOT), "$REPO")]


def portable(value: Any, anchors: Sequence[tuple[str, str]]) -> Any:
    """``value`` (plain data) with every path -- a ``Path``, or a string naming one -- under an anchor's root
    written as the anchor's token plus the rest (``/work/a/.hephaestus/cache`` -> ``$HEPHAESTUS_HOME/cache``);
    other values as they are."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        for root, token in anchors:
            if value == root or value.startswith(root + os.sep):
                return token + value[len(root) :]
        return value
    if isinstance(value, dict):
        return {k: portable(v, anchors) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v, anchors) for v in value]
    return value


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
