"""``make cluster-demo``: the micro graph end to end on the cluster machinery, on this machine.

Starts the services (``orchestration.services``: PostgreSQL, Redis, MLflow server on PostgreSQL, 2
Celery workers, all on 127.0.0.1 with fresh passwords), materializes every asset of the
``cluster_micro`` profile with the Celery executor (training stages as 2 torchrun "nodes"), prints
which worker (name and pid) ran each step and what MLflow recorded, then stops the services
(``--keep`` leaves them up; ``make services-stop`` ends them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from orchestration.demo import check_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.cluster_demo")
    parser.add_argument("--profile", default="cluster_micro")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the services running afterwards")
    args = parser.parse_args(argv)
    os.environ["HEPHAESTUS_PROFILE"] = args.profile

    from orchestration.services import Services, default_dir, missing_binaries

    missing = missing_binaries()
    if missing:
        print(
            f"cluster-demo: missing {', '.join(missing)}; run `make services-install` as root",
            file=sys.stderr,
        )
        return 1
    from orchestration.cluster import (
        ensure_instance,
        run_cluster,
        settings_of,
        step_workers,
        worker_environment,
    )

    services = Services(default_dir())
    services.stop()  # a previous --keep: its passwords are replaced below
    env = worker_environment(args.profile)
    t0 = time.perf_counter()
    try:
        services.start(services.root.parent / "mlflow-artifacts", env, n_workers=args.workers)
        os.environ.update(env)
        os.environ.update(services.env())
        started = time.perf_counter() - t0
        print(
            f"services up in {started:.0f} s: PostgreSQL 127.0.0.1:{services.state['pg_port']}, "
            f"Redis 127.0.0.1:{services.state['redis_port']}, MLflow {os.environ['MLFLOW_TRACKING_URI']}, "
            f"workers {services.state['workers']} (name: pid)"
        )
        ensure_instance(args.profile)
        from dagster import DagsterInstance

        t1 = time.perf_counter()
        with DagsterInstance.get() as instance:
            result = run_cluster(args.profile, instance)
            elapsed = time.perf_counter() - t1
            workers = step_workers(instance, result.run_id)
        _report(result, workers, services.state["workers"], elapsed, settings_of(args.profile))
        return 0 if result.success else 1
    finally:
        if args.keep:
            print(
                f"services left running; `source {services.root / 'services.env'}`; `make services-stop` ends them"
            )
        else:
            services.stop()


def _report(result, workers: dict[str, list[str]], pids: dict[str, int], elapsed: float, settings) -> None:
    from mlflow.tracking import MlflowClient

    print(
        f"\nDagster run {result.run_id} (PostgreSQL instance, Celery executor): "
        f"{'succeeded' if result.success else 'FAILED'} in {elapsed:.0f} s"
    )
    per_worker = Counter(w for ws in workers.values() for w in ws)
    for worker, n in sorted(per_worker.items()):
        print(f"  {worker} (pid {pids.get(worker.split('@')[0], '?')}): {n} steps")
    for step, ws in sorted(workers.items()):
        print(f"    {step:<50} {' -> '.join(ws)}")
    mats = result.get_asset_materialization_events()
    checks = [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    # a WARN check that did not pass (promotion refusing a challenger) is a decision, as make demo says
    print(f"{len(mats)} assets materialized over {len(per_worker)} workers; {check_summary(checks)}")
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"hephaestus-{settings.name}")
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], max_results=200)
        status = Counter(r.info.status for r in runs)
        print(f"MLflow ({os.environ['MLFLOW_TRACKING_URI']}, PostgreSQL): {len(runs)} runs {dict(status)}")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"FAILED {event.step_key}: {event.event_specific_data.error.message.strip()[:500]}")


if __name__ == "__main__":
    sys.exit(main())
