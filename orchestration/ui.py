"""``make ui``: the Dagster UI and the MLflow UI on 127.0.0.1, on the stores `make demo` wrote."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.ui")
    parser.add_argument("--profile", default=os.environ.get("HEPHAESTUS_PROFILE", "default"))
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ["HEPHAESTUS_PROFILE"] = args.profile

    from assets.profile import REPO_ROOT
    from assets.resources import ForgeResource
    from orchestration.instance import ensure_dagster_home

    ensure_dagster_home()
    paths = ForgeResource(profile=args.profile).paths
    paths.mlflow_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    mlflow_cmd = [
        str(bin_dir / "mlflow"),
        "ui",
        "--backend-store-uri",
        paths.tracking_uri,
        "--default-artifact-root",
        paths.artifact_root,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.mlflow_port),
    ]
    dagster_cmd = [
        str(bin_dir / "dagster"),
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(args.dagster_port),
    ]
    print(f"MLflow UI:  http://127.0.0.1:{args.mlflow_port}  ({paths.tracking_uri})")
    print(f"Dagster UI: http://127.0.0.1:{args.dagster_port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    # MLflow's background job workers (online scoring, trace archival) are not used here and
    # would start several heavy processes on a 2-core machine.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_proc = subprocess.Popen(mlflow_cmd, env=env)
    try:
        return subprocess.call(dagster_cmd, cwd=REPO_ROOT)
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow_proc.terminate()
        mlflow_proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
