"""The Python introspection as a stage: configured modules -> raw.python_module_operations.

:class:`PythonIntrospectionConfig` is the profile's ``sources.python_introspection`` section; the
module list (``sources.python_modules``) is the stage's input. The interpreter and the installed
packages are inputs too: :func:`forge.sources.python.introspect.environment_digest` names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.io import write_parquet
from forge.core.report import finish_ingest
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats

#: Drop reasons that mean a whole module was skipped (it did not import, timed out or crashed).
MODULE_SKIPS = ("import_error", "import_timeout", "child_crashed")


class PythonIntrospectionConfig(StageConfig):
    """``sources.python_introspection``: each module is imported in a sandboxed child process."""

    #: children at once; rows do not depend on it
    workers: int = 1
    #: seconds a child may take to import and introspect one module (then a counted skip)
    timeout_s: float = 60.0

    speed_only = frozenset({"workers"})


def ingest_python_modules(
    cfg: PythonIntrospectionConfig, *, modules: list[str], out_dir: Path, progress: Any = None
) -> dict[str, Any]:
    """Introspected Python callables (each module in a sandboxed subprocess) ->
    ``out_dir/python_module.parquet`` (raw.python_module_operations). ``modules`` may hold
    ``stdlib`` and ``pkg.*`` entries (``forge.sources.python.introspect.expand_modules``)."""
    from forge.sources.python.introspect import expand_modules, introspect_modules

    names = expand_modules(modules)
    stats = StepStats("python_modules")
    rows = introspect_modules(names, stats, timeout_s=cfg.timeout_s, workers=cfg.workers, progress=progress)
    n = write_parquet(out_dir / "python_module.parquet", rows, schemas.API_OPERATIONS)
    return finish_ingest(
        "python_module_operations",
        out_dir,
        n,
        [stats],
        n_modules=len(names),
        n_modules_skipped=sum(stats.dropped[r] for r in MODULE_SKIPS if r in stats.dropped),
    )


PYTHON_STAGE = Stage("python_module_operations", PythonIntrospectionConfig, ingest_python_modules)
