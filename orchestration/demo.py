"""``make demo``: materialize every asset on a profile in one process and print the scorecard.

Runs the ``full_pipeline`` job against the local Dagster instance (so the runs show in the UI),
after freeing the pool slots of runs that were killed, then says how many assets were rebuilt and
how many were already up to date.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def check_summary(checks: list) -> str:
    """One line over the run's asset-check evaluations: how many passed, which failed (blocking or of error
    severity), and which only warned -- a non-blocking ``WARN`` check that did not pass, e.g. ``promotion``
    refusing a challenger no better than the champion, which is a decision, not a failure -- with its
    ``decision`` metadata where it has one."""
    from dagster import AssetCheckSeverity

    failed = [c.check_name for c in checks if not c.passed and c.severity != AssetCheckSeverity.WARN]
    warned = []
    for c in checks:
        if not c.passed and c.severity == AssetCheckSeverity.WARN:
            decision = (c.metadata or {}).get("decision")
            value = getattr(decision, "value", decision)
            warned.append(c.check_name + (f" ({value})" if value else ""))
    passed = len(checks) - len(failed) - len(warned)
    return (
        f"{len(checks)} asset checks: {passed} passed"
        + (f", warned: {', '.join(warned)}" if warned else "")
        + (f", FAILED: {', '.join(failed)}" if failed else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.demo")
    parser.add_argument("--profile", default=os.environ.get("HEPHAESTUS_PROFILE", "default"))
    args = parser.parse_args(argv)
    os.environ["HEPHAESTUS_PROFILE"] = args.profile

    from orchestration.instance import ensure_dagster_home, release_dead_runs

    dagster_home = ensure_dagster_home()
    from dagster import DagsterInstance

    from assets.resources import ForgeResource
    from orchestration.definitions import defs

    paths = ForgeResource(profile=args.profile).paths
    t0 = time.perf_counter()
    with DagsterInstance.get() as instance:
        for run_id in release_dead_runs(instance):  # else a killed run's pool slot blocks this one
            print(f"Dagster run {run_id} was killed: marked failed, its pool slots freed")
        result = defs.resolve_job_def("full_pipeline").execute_in_process(
            instance=instance, raise_on_error=False
        )
    elapsed = time.perf_counter() - t0

    rebuilt, fresh, off = [], [], []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        up_to_date = mat.metadata.get("up_to_date")
        if "skipped" in mat.metadata:  # turned off by the profile (e.g. research.enabled: false)
            off.append(mat.asset_key.to_user_string())
            continue
        (fresh if up_to_date is not None and up_to_date.value else rebuilt).append(
            mat.asset_key.to_user_string()
        )
    checks = [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]

    print()
    print(
        f"Dagster run {result.run_id}: {'succeeded' if result.success else 'FAILED'} in {elapsed:.0f} s "
        f"(profile {args.profile})"
    )
    n_dbt = sum(_is_dbt(k) for k in rebuilt)
    print(
        f"{len(rebuilt) + len(fresh) + len(off)} assets materialized: {len(rebuilt) - n_dbt} Python assets "
        f"rebuilt, {len(fresh)} up to date, {n_dbt} dbt models re-run (dbt rebuilds its views and tables every "
        f"run)" + (f", {len(off)} turned off by the profile (a recorded skip)" if off else "")
    )
    if fresh and not [k for k in rebuilt if not _is_dbt(k)]:
        print(
            "Nothing upstream changed: every Python asset was up to date and skipped its work "
            "(dbt re-ran its models, which takes seconds)."
        )
    print(check_summary(checks))
    card = paths.evaluation / "scorecard" / "scorecard.txt"
    if card.exists():
        print("\nScorecard\n" + card.read_text())
    print(
        "Open the UIs (Dagster on http://127.0.0.1:3000, MLflow on http://127.0.0.1:5000):\n"
        f"  make ui PROFILE={args.profile}\n"
        f"State: {paths.root}  (DAGSTER_HOME={dagster_home})"
    )
    return 0 if result.success else 1


def _is_dbt(key: str) -> bool:
    return key.startswith(("stg_", "int_", "fct_", "dim_"))


if __name__ == "__main__":
    sys.exit(main())
