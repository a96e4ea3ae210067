"""Python module introspection -> API rows (``source="python_module"``), one per public callable.

Importing a module runs its code, so the main process never imports what it describes: each
module is introspected in a child process (``python -m forge.sources.python.introspect <module>``) that
prints one JSON object per line, under a timeout. A module that fails to import, crashes or
hangs is a counted skip with its reason. The parent parses docstrings (``docstring_parser``,
Google / NumPy / Sphinx styles) and builds the rows with ``contracts.tables.api_operation_row``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import pkgutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.tables import api_operation_row
from forge.core.ids import sanitize_function_name, unique_name
from forge.core.parallel import die_with_parent, ordered_map
from forge.core.stats import StepStats
from forge.sources.python.signatures import describe_callable, public_members

SOURCE = "python_module"
#: The repository root, put on the child's PYTHONPATH so it imports this checkout's packages.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def docstring_parts(doc: str) -> tuple[str | None, str | None, dict[str, str], str | None]:
    """(summary, long description, {param: description}, returns description) of a docstring."""
    if not doc:
        return None, None, {}, None
    try:
        import docstring_parser
    except ImportError as exc:  # a dependency of dagster; named in pyproject for forge's own use
        raise RuntimeError("forge.sources.python.introspect needs the 'docstring_parser' package") from exc
    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        first = doc.strip().split("\n\n", 1)
        return first[0].strip() or None, doc.strip(), {}, None
    params = {p.arg_name.lstrip("*"): p.description.strip() for p in parsed.params if p.description}
    returns = parsed.returns.description.strip() if parsed.returns and parsed.returns.description else None
    return parsed.short_description, parsed.long_description, params, returns


def record_to_row(record: dict[str, Any], fetched_at: datetime, seen: set[str]) -> dict[str, Any]:
    """Turn one child-process record (see ``describe_callable``) into an API_OPERATIONS row."""
    summary, long_desc, param_docs, returns_doc = docstring_parts(record.get("doc") or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in record["params"]:
        schema = dict(p["schema"])
        if p["name"] in param_docs:
            schema["description"] = param_docs[p["name"]] + (
                f" {schema['description']}" if schema.get("description") else ""
            )
        properties[p["name"]] = schema
        if p["required"]:
            required.append(p["name"])
    responses: dict[str, Any] = {"return": dict(record.get("returns") or {})}
    if returns_doc:
        responses["return"]["description"] = returns_doc
    qualname = record["qualname"]
    return api_operation_row(
        source=SOURCE,
        provider=record["module"].split(".")[0],
        api_name=record["module"],
        version=record.get("version") or "",
        method=record["kind"],
        path=qualname,
        function_name=unique_name(sanitize_function_name(qualname), seen),
        summary=summary,
        description="\n\n".join(x for x in (summary, long_desc) if x) or None,
        parameters={"type": "object", "properties": properties, "required": required},
        responses=responses,
        tags=[record["module"]],
        source_uri=record.get("file") or f"python:{record['module']}",
        license=record.get("license"),
        fetched_at=fetched_at,
    )


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(_PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # importing must not write into site-packages
    env["NO_PROXY"] = "*"
    return env


#: Address-space limit of one introspection child (a module that allocates wildly is a skip).
CHILD_MEMORY_BYTES = 4 * 2**30
#: Largest file a child may write (importing should write nothing; a runaway one is stopped).
CHILD_FILE_BYTES = 16 * 2**20


def _limit_child(parent_pid: int) -> None:  # runs in the child between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (CHILD_FILE_BYTES, CHILD_FILE_BYTES))
    die_with_parent(parent_pid)  # a killed ingest leaves no importing child behind (kept over exec)


def _run_child(module: str, timeout_s: float) -> subprocess.CompletedProcess | None:
    """Introspect ``module`` in a sandboxed child; None when it timed out (its process group is killed).

    The sandbox: its own process group (killed whole on timeout, so a module that spawns helpers
    leaves none behind), a scratch working directory that is removed afterwards (relative writes
    land there), address-space and file-size limits, no bytecode writes, and in the child
    ``socket`` connections raise (``_main``), so importing cannot reach the network.
    """
    cmd = [sys.executable, "-m", "forge.sources.python.introspect", module]
    with tempfile.TemporaryDirectory(prefix="introspect-") as scratch:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
            cwd=scratch,
            start_new_session=True,
            preexec_fn=functools.partial(_limit_child, os.getpid()),  # noqa: PLW1509 - setrlimit + prctl, no locks
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _introspect_one(
    module: str, timeout_s: float, fetched_at: datetime
) -> tuple[list[dict[str, Any]], StepStats]:
    stats = StepStats("python_modules")
    proc = _run_child(module, timeout_s)
    if proc is None:
        stats.drop("import_timeout", f"{module}: no answer within {timeout_s:g}s")
        return [], stats
    records = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:  # a module that prints JSON-looking text of its own on import
                stats.note("unparsable_child_line")
    errors = [r for r in records if r.get("error")]
    if proc.returncode != 0 or (errors and errors[0].get("fatal")):
        reason = errors[0]["error"] if errors else "child_crashed"
        detail = errors[0].get("detail") if errors else proc.stderr.strip()[-300:]
        stats.drop(reason, f"{module}: {detail}")
        return [], stats
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rec in records:
        if rec.get("error"):
            stats.drop(rec["error"], f"{module}: {rec.get('detail', '')}")
            continue
        try:
            rows.append(record_to_row(rec, fetched_at, seen))
        except Exception as exc:  # a member the child described oddly: that member's skip only
            stats.drop(
                "record_error", f"{module}.{rec.get('qualname', '?')}: {type(exc).__name__}: {exc}"[:300]
            )
            continue
        stats.keep()
    return rows, stats


def introspect_modules(
    modules: list[str],
    stats: StepStats,
    timeout_s: float = 60,
    fetched_at: datetime | None = None,
    workers: int = 1,
    progress: Callable[[str, int], None] | None = None,
) -> list[dict[str, Any]]:
    """API rows for the public callables of each module, each module introspected in a subprocess.

    ``stats`` counts rows kept, and skipped modules by reason (``import_error``,
    ``import_timeout``, ``child_crashed``) or skipped members (``no_signature``...) as reported
    by the child. Order follows ``modules``, then the child's (sorted) member order, whatever
    ``workers`` (children run at once). ``progress(module, n_rows)`` is called per module.
    """
    fetched_at = fetched_at or datetime.now(UTC).replace(microsecond=0)
    out: list[dict[str, Any]] = []
    # threads: each module's cost is in its own child process already
    one = functools.partial(_introspect_one, timeout_s=timeout_s, fetched_at=fetched_at)
    results = ordered_map(one, modules, workers, threads=True)
    for module, (rows, st) in zip(modules, results, strict=True):
        stats.merge(st)
        if progress is not None:
            progress(module, len(rows))
        out.extend(rows)
    return out


def environment_digest(modules: list[str]) -> str:
    """A digest of what introspecting ``modules`` reads besides their names: the interpreter's
    version and the version of each distribution that ships one of their top-level packages
    (upgrading a package changes its rows; unrelated installs do not)."""
    import hashlib
    import importlib.metadata as md

    by_package = md.packages_distributions()
    tops = sorted({m.split(".")[0] for m in expand_modules(modules)})
    parts = [sys.version]
    for top in tops:
        for dist in sorted(set(by_package.get(top, []))):
            try:
                parts.append(f"{top}:{dist}=={md.version(dist)}")
            except md.PackageNotFoundError:
                parts.append(f"{top}:{dist}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Which modules: "stdlib" and "package.*" expand to public module names (nothing is imported)
# --------------------------------------------------------------------------------------------------
#: stdlib modules that are GUI, test, demo, platform-only or side-effecting on import
EXCLUDED_STDLIB = frozenset(
    {
        "test", "tests", "idlelib", "tkinter", "turtle", "turtledemo", "antigravity", "this", "lib2to3",
        "ensurepip", "pydoc_data", "msilib", "winreg", "winsound", "msvcrt", "nt", "ntpath", "nturl2path",
        "_winapi", "venv", "__main__", "__phello__", "xxsubtype", "xxlimited", "_testcapi", "sre_compile",
        "sre_constants", "sre_parse",
    }
)  # fmt: skip


def is_public_module(name: str) -> bool:
    parts = name.split(".")
    return not any(p.startswith("_") or p in EXCLUDED_STDLIB or p.startswith("test") for p in parts)


def public_submodules(package: str, depth: int = 1) -> list[str]:
    """Public submodules of ``package`` found on disk, ``depth`` levels down (nothing is imported:
    ``find_spec`` of a top-level name only locates it)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    out: list[str] = []
    level = [(package, list(spec.submodule_search_locations))]
    for _ in range(depth):
        below = []
        for name, locations in level:
            for info in pkgutil.iter_modules(locations, prefix=name + "."):
                if is_public_module(info.name):
                    out.append(info.name)
                    if info.ispkg:
                        leaf = info.name.rsplit(".", 1)[1]
                        below.append(
                            (info.name, [str(Path(p) / leaf) for p in locations if (Path(p) / leaf).is_dir()])
                        )
        level = below
    return out


def stdlib_modules() -> list[str]:
    """Every public standard-library module and its public submodules (two levels)."""
    tops = sorted(n for n in sys.stdlib_module_names if is_public_module(n))
    return sorted({*tops, *(s for t in tops for s in public_submodules(t, depth=2))})


def expand_modules(specs: list[str]) -> list[str]:
    """Module names from configuration entries: ``stdlib`` (the whole standard library, see
    ``stdlib_modules``), ``pkg.*`` (a package and its public first-level submodules) or a plain
    module name. Order kept, duplicates dropped."""
    out: dict[str, None] = {}
    for spec in specs:
        if spec == "stdlib":
            names = stdlib_modules()
        elif spec.endswith(".*"):
            names = [spec[:-2], *public_submodules(spec[:-2])]
        else:
            names = [spec]
        out.update(dict.fromkeys(names))
    return list(out)


def _module_metadata(module: Any) -> dict[str, Any]:
    """File, version and license of the distribution that ships ``module`` (best effort)."""
    import importlib.metadata as md
    import sysconfig

    name = module.__name__.split(".")[0]
    file = getattr(module, "__file__", None)
    meta = {"file": os.path.abspath(file) if file else None, "version": "", "license": "unknown"}
    stdlib = sysconfig.get_paths()["stdlib"]
    if name in sys.stdlib_module_names or (file and file.startswith(stdlib) and "site-packages" not in file):
        return meta | {"version": f"{sys.version_info.major}.{sys.version_info.minor}", "license": "PSF-2.0"}
    for dist in md.packages_distributions().get(name, []):
        try:
            info = md.metadata(dist)
        except md.PackageNotFoundError:
            continue
        lic = info.get("License-Expression") or info.get("License") or ""
        return meta | {"version": info.get("Version") or "", "license": lic.strip()[:100] or "unknown"}
    return meta


def _no_network() -> None:
    """In the child: any socket connection raises, so importing a module cannot reach a network."""
    import socket

    def refuse(*_a: Any, **_k: Any) -> None:
        raise OSError("network access is disabled while introspecting modules")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def _main(module_name: str) -> int:
    """Child-process entry: import one module and print one JSON line per public callable."""
    import importlib

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")

    _no_network()
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - any import failure is a reported skip
        emit({"error": "import_error", "fatal": True, "detail": f"{type(exc).__name__}: {exc}"[:300]})
        return 0
    meta = _module_metadata(module)
    for qualname, kind, obj in public_members(module):
        if kind == "exception":
            emit({"error": "exception_class", "detail": qualname})
            continue
        try:
            record = describe_callable(obj, qualname, kind)
        except (ValueError, TypeError) as exc:
            emit({"error": "no_signature", "detail": f"{qualname}: {exc}"[:300]})
            continue
        emit(record | {"module": module_name} | meta)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))

__all__ = ["expand_modules", "introspect_modules", "record_to_row", "stdlib_modules"]
