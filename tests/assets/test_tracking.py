"""One MLflow store per profile: what writes MLflow (the assets' store setup and runs, the training
sink's own experiments) leaves nothing in the working directory or the repository root."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from mlflow import MlflowClient
    from assets.tracking import active_run, create_run, ensure_experiment
    from training.config import MlflowConfig
    from training.metrics import MlflowSink

    store = Path(sys.argv[1])
    uri = f"sqlite:///{store / 'mlflow.db'}"
    exp = ensure_experiment(uri, "hephaestus-test", (store / "artifacts").as_uri())
    run_id = create_run(uri, exp, "asset", tags={})
    art = Path(tempfile.mkdtemp()) / "a.txt"
    art.write_text("x")
    import mlflow
    with active_run(uri, run_id):
        mlflow.log_artifact(str(art))
    sink = MlflowSink(MlflowConfig(tracking_uri=uri, experiment="training-own"))
    sink.log_artifacts(art.parent)
    sink.close()
    client = MlflowClient(uri)
    for e in client.search_experiments():
        print(e.name, e.artifact_location)
    """
)


def _run_writer(cwd: Path, store: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(store)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(REPO_ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
             "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def _git_status() -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=normal"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line[3:] for line in out.splitlines()}


def test_mlflow_writes_only_inside_its_store_and_git_status_stays_clean(tmp_path):
    """Run from the repository root (where a stray ``mlruns/`` used to appear): nothing new there,
    and every experiment, "Default" included, keeps its artifacts inside the store."""
    store = tmp_path / "store"
    before = _git_status()
    experiments = _run_writer(REPO_ROOT, store)
    new = _git_status() - before
    assert not [p for p in new if "mlruns" in p or "mlflow" in p or p.endswith(".db")], new
    assert len(experiments) == 3  # Default, the asset's, the training sink's
    for line in experiments:
        assert line.rsplit(" ", 1)[1].startswith(store.as_uri()), line
