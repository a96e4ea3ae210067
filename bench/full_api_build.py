"""A full build of the API-documentation assets through Dagster + dbt, and what ``dim_apis`` holds.

Materializes, on a profile (``gpu`` by default: every OpenAPI provider, the standard library and a
few packages, the python3.11-doc crawl), the four API source assets, the dbt models up to
``dim_apis`` / ``fct_duplicate_apis`` and the ``gx_dim_apis`` check, in one process on the CPU,
then prints the distinct APIs per source against the target (>= 100,000; paper: 76,537)::

    HEPHAESTUS_HOME=/tmp/fullbuild .venv/bin/python bench/full_api_build.py --profile gpu \\
        --out bench/results/<date>_dim_apis_full_build_cpu-2core.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER, TARGET = 76_537, 100_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ["HEPHAESTUS_PROFILE"] = args.profile
    import duckdb
    from dagster import AssetKey, DagsterInstance

    from assets.profile import Paths
    from orchestration.definitions import defs

    raw = (
        "openapi_operations",
        "python_module_operations",
        "hub_doc_operations",
        "documents",
        "web_docs_operations",
    )
    models = ("stg_forge__api_operations", "int_ranked_api_operations", "dim_apis", "fct_duplicate_apis")
    selected = [AssetKey(["raw", t]) for t in raw] + [AssetKey(m) for m in models]
    instance = DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    job = defs.get_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=selected, raise_on_error=False)
    seconds = time.perf_counter() - t0
    steps = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
    checks = {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    if not result.success:
        failed = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        print(f"build failed after {seconds:.1f} s: {failed}; checks: {checks}", file=sys.stderr)
        return 1
    home = Path(os.environ.get("HEPHAESTUS_HOME", ".hephaestus")).resolve()
    warehouse = Paths(home=home, profile=args.profile).warehouse
    with duckdb.connect(str(warehouse), read_only=True) as con:
        by_source = con.execute(
            "select source, count(*), sum(n_copies), sum(n_versions) from dim_apis group by 1 order by 2 desc"
        ).fetchall()
        n_raw = con.execute("select count(*) from stg_forge__api_operations").fetchone()[0]
        n_dim = con.execute("select count(*) from dim_apis").fetchone()[0]
        dups = con.execute(
            "select reason, count(*) from fct_duplicate_apis group by 1 order by 2 desc"
        ).fetchall()
    lines = [
        f"# Full build of the API-documentation assets — {date.today()} — {platform.node()} "
        f"({os.cpu_count()} cores, no GPU), profile {args.profile}",
        f"# selected: {', '.join(sorted(k.to_user_string() for k in selected))}",
        f"success {result.success}; wall {seconds:.1f} s; checks: {checks}",
        "step seconds: " + "; ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda x: -x[1])),
        "",
        "| source | distinct APIs (dim_apis) | raw rows merged in |",
        "| --- | ---: | ---: |",
        *(f"| {s} | {n:,} | {copies:,} |" for s, n, copies, _ in by_source),
        f"| **total** | **{n_dim:,}** | {n_raw:,} |",
        "",
        "fct_duplicate_apis by reason: " + ", ".join(f"{r} {n:,}" for r, n in dups),
        f"target >= {TARGET:,}: {'MET' if n_dim >= TARGET else 'NOT MET'}; paper {PAPER:,}; "
        f"ours/paper = {n_dim / PAPER:.2f}x",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
