"""``make ui``: the Dagster UI and the MLflow UI on 127.0.0.1, on the stores `make demo` wrote.

Both servers start in their own process groups; the two URLs are printed, and once both answer a
line says so. Ctrl-C (SIGINT) or SIGTERM stops both: ``dagster dev`` gets SIGINT (it shuts its
webserver, daemon and code server down itself), MLflow's server group SIGTERM, and whatever is still
running after ``--grace`` seconds is killed — no server is left behind on its port. If either server
exits by itself, the other is stopped too and the exit status is non-zero. If this launcher is
killed outright (``kill -9``), the kernel sends the servers the same signals (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from forge.core.parallel import die_with_parent


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def _stop(procs: dict[str, subprocess.Popen], grace_s: float) -> None:
    """SIGINT to dagster's group, SIGTERM to MLflow's; SIGKILL to any group left after ``grace_s``."""
    for name, proc in procs.items():
        if proc.poll() is None:
            sig = signal.SIGINT if name == "dagster" else signal.SIGTERM
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in procs.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs.values():  # the group too: workers a server started outlive their parent
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.ui")
    parser.add_argument("--profile", default=os.environ.get("HEPHAESTUS_PROFILE", "default"))
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--grace", type=float, default=20.0, help="seconds to wait for a clean stop")
    args = parser.parse_args(argv)
    os.environ["HEPHAESTUS_PROFILE"] = args.profile

    from assets.profile import REPO_ROOT
    from assets.resources import ForgeResource
    from assets.tracking import init_store
    from orchestration.instance import ensure_dagster_home

    ensure_dagster_home()
    paths = ForgeResource(profile=args.profile).paths
    paths.mlflow_dir.mkdir(parents=True, exist_ok=True)
    init_store(paths.tracking_uri, paths.artifact_root)  # a fresh store keeps its artifacts in the profile
    bin_dir = Path(sys.executable).parent
    mlflow_cmd = [
        str(bin_dir / "mlflow"), "ui",
        "--backend-store-uri", paths.tracking_uri,
        "--default-artifact-root", paths.artifact_root,
        "--host", "127.0.0.1", "--port", str(args.mlflow_port),
        "--workers", "1",
    ]  # fmt: skip
    dagster_cmd = [
        str(bin_dir / "dagster"), "dev",
        "-w", str(REPO_ROOT / "workspace.yaml"),
        "-h", "127.0.0.1", "-p", str(args.dagster_port),
    ]  # fmt: skip
    mlflow_url = f"http://127.0.0.1:{args.mlflow_port}"
    dagster_url = f"http://127.0.0.1:{args.dagster_port}"
    print(f"MLflow UI:  {mlflow_url}  ({paths.tracking_uri})", flush=True)
    print(f"Dagster UI: {dagster_url}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    # MLflow's background job workers (online scoring, trace archival) are not used here and
    # would start several heavy processes on a 2-core machine.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    procs: dict[str, subprocess.Popen] = {}

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C even where SIGINT was inherited as ignored (a background job of a non-interactive shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # each server in a session of its own (Ctrl-C is ours to pass on), told by the kernel to stop
        # cleanly if this launcher dies without running _stop (kill -9): nothing outlives `make ui`
        me = os.getpid()
        procs["mlflow"] = subprocess.Popen(
            mlflow_cmd, env=env, start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, me, signal.SIGTERM),  # noqa: PLW1509 - one prctl
        )  # fmt: skip
        procs["dagster"] = subprocess.Popen(
            dagster_cmd, cwd=REPO_ROOT, start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, me, signal.SIGINT),  # noqa: PLW1509 - one prctl
        )  # fmt: skip
        announced = False
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited (status {proc.returncode}); stopping the other server", flush=True)
                    return 1
            if not announced and _answers(mlflow_url) and _answers(f"{dagster_url}/server_info"):
                print("Both UIs are up; Ctrl-C stops both.", flush=True)
                announced = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping the Dagster and MLflow UIs...", flush=True)
        return 0
    finally:
        _stop(procs, args.grace)
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
