"""Python module introspection -> API rows (``source="python_module"``), one per public callable.

Importing a module runs its code, so the main process never imports what it describes: each
module is introspected in a child process (``python -m forge.python_modules <module>``) that
prints one JSON object per line, under a timeout. A module that fails to import, crashes or
hangs is a counted skip with its reason. The parent parses docstrings (``docstring_parser``,
Google / NumPy / Sphinx styles) and assembles rows matching ``forge.schemas.API_OPERATIONS``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forge.ids import api_id, content_sha256, sanitize_function_name, unique_name
from forge.python_signatures import describe_callable, public_members
from forge.stats import StepStats

SOURCE = "python_module"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _docstring_parts(doc: str) -> tuple[str | None, str | None, dict[str, str], str | None]:
    """(summary, long description, {param: description}, returns description) of a docstring."""
    if not doc:
        return None, None, {}, None
    try:
        import docstring_parser
    except ImportError as exc:  # a dependency of dagster; named in pyproject for forge's own use
        raise RuntimeError("forge.python_modules needs the 'docstring_parser' package") from exc
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
    summary, long_desc, param_docs, returns_doc = _docstring_parts(record.get("doc") or "")
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
    top = record["module"].split(".")[0]
    row: dict[str, Any] = {
        "api_id": api_id(
            SOURCE, top, record["module"], record.get("version") or "", record["kind"], qualname
        ),
        "source": SOURCE,
        "provider": top,
        "api_name": record["module"],
        "version": record.get("version") or "",
        "function_name": unique_name(sanitize_function_name(qualname), seen),
        "method": record["kind"],
        "path": qualname,
        "summary": summary,
        "description": "\n\n".join(x for x in (summary, long_desc) if x) or None,
        "parameters": json.dumps(
            {"type": "object", "properties": properties, "required": required}, sort_keys=True, default=str
        ),
        "responses": json.dumps(responses, sort_keys=True, default=str),
        "tags": json.dumps([record["module"]]),
        "source_uri": record.get("file") or f"python:{record['module']}",
        "license": record.get("license") or "unknown",
        "fetched_at": fetched_at,
    }
    row["content_sha256"] = content_sha256(row)
    return row


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(_PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def introspect_modules(
    modules: list[str],
    stats: StepStats,
    timeout_s: float = 60,
    fetched_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """API rows for the public callables of each module, each module introspected in a subprocess.

    ``stats`` counts rows kept, and skipped modules by reason (``import_error``,
    ``import_timeout``, ``child_crashed``) or skipped members (``no_signature``...) as reported
    by the child. Order follows ``modules``, then the child's (sorted) member order.
    """
    fetched_at = fetched_at or datetime.now(UTC).replace(microsecond=0)
    rows: list[dict[str, Any]] = []
    for module in modules:
        cmd = [sys.executable, "-m", "forge.python_modules", module]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, env=_child_env(), cwd=_PROJECT_ROOT
            )
        except subprocess.TimeoutExpired:
            stats.drop("import_timeout", f"{module}: no answer within {timeout_s:g}s")
            continue
        records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        errors = [r for r in records if r.get("error")]
        if proc.returncode != 0 or (errors and errors[0].get("fatal")):
            reason = errors[0]["error"] if errors else "child_crashed"
            detail = errors[0].get("detail") if errors else proc.stderr.strip()[-300:]
            stats.drop(reason, f"{module}: {detail}")
            continue
        seen: set[str] = set()
        for rec in records:
            if rec.get("error"):
                stats.drop(rec["error"], f"{module}: {rec.get('detail', '')}")
                continue
            rows.append(record_to_row(rec, fetched_at, seen))
            stats.keep()
    return rows


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


def _main(module_name: str) -> int:
    """Child-process entry: import one module and print one JSON line per public callable."""
    import importlib

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")

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

__all__ = ["introspect_modules", "record_to_row"]
