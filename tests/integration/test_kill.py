"""``kill -9`` at random moments: a killed materialization never leaves a half output visible.

The ingest layer of the ``micro`` graph (every ingest asset that does not read the warehouse) is
materialized once without interruption (the reference), then again from scratch in a subprocess
whose whole process group is SIGKILLed at seeded random moments and re-executed each time. After
every kill each asset's visible output — its Parquet files under their final names and its
completion marker — must be either complete and identical to the reference (marker present) or
not claimed as done (no marker), every visible Parquet file must open, and an asset that was
complete stays untouched. The last, uninterrupted run must give the reference state.

``make test`` runs ``HEPHAESTUS_KILLS`` (default 10) kills; ``make fuzz`` runs more, with the
warehouse group too (``HEPHAESTUS_KILL_GROUPS=ingest,warehouse``).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from forge.core.markers import read_marker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("HEPHAESTUS_KILLS", "10"))
GROUPS = os.environ.get("HEPHAESTUS_KILL_GROUPS", "ingest").split(",")
SEED = int(os.environ.get("HEPHAESTUS_KILL_SEED", "18"))

DRIVER = textwrap.dedent("""
    import sys
    from dagster import AssetSelection, DagsterInstance
    from orchestration.definitions import defs
    groups = sys.argv[1].split(",")
    selection = AssetSelection.groups(*groups)
    if "warehouse" not in groups:  # ingest assets that read the warehouse need dbt first
        selection = selection - AssetSelection.groups("warehouse").downstream()
    else:  # and dbt reads Python assets of other groups between its models (near-duplicates, retrieval)
        selection = selection | AssetSelection.groups("warehouse").upstream()
    keys = list(selection.resolve(defs.resolve_asset_graph()))
    job = defs.get_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), asset_selection=keys, raise_on_error=False)
    sys.exit(0 if result.success else 1)
""")

State = dict[str, tuple[str | None, dict[str, int]]]


def _snapshot(home: Path) -> State:
    """Per output directory: its marker's fingerprint (None: not done) and its visible Parquet
    files with their row counts. Opening each file is the check that none is half-written."""
    out: State = {}
    data = home / "micro" / "data"
    for marker_dir in sorted(
        {p.parent for p in data.rglob("*.parquet")} | {p.parent for p in data.rglob("_SUCCESS.json")}
    ):
        if any(part.startswith((".", "_")) for part in marker_dir.relative_to(data).parts):
            continue  # staging folders and the dropped-rows side tables
        marker = read_marker(marker_dir)
        files = {f.name: pq.read_metadata(f).num_rows for f in sorted(marker_dir.glob("*.parquet"))}
        out[str(marker_dir.relative_to(data))] = (marker["fingerprint"] if marker else None, files)
    return out


def _start(home: Path) -> subprocess.Popen:
    env = dict(
        os.environ, HEPHAESTUS_HOME=str(home), HEPHAESTUS_PROFILE="micro", DAGSTER_HOME=str(home / "dagster"),
        PYTHONPATH=str(ROOT), TQDM_DISABLE="1",
    )  # fmt: skip
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, ",".join(GROUPS)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


def test_random_kills_leave_only_complete_outputs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    t0 = time.monotonic()
    _finish(_start(home))
    reference, t_ref = _snapshot(home), time.monotonic() - t0
    assert reference and all(fp is not None for fp, _ in reference.values()), reference
    shutil.rmtree(home)  # same path again: fingerprints that name paths stay comparable

    rng = random.Random(SEED)
    landed, previous = 0, _snapshot(home) if home.exists() else {}
    for _ in range(3 * KILLS):
        if landed >= KILLS:
            break
        proc = _start(home)
        time.sleep(rng.uniform(1.0, max(2.0, 0.6 * t_ref)))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            landed += 1
        proc.wait(timeout=60)
        proc.stderr.close()
        state = _snapshot(home)
        for name, (fp, files) in state.items():
            if fp is not None:  # claimed complete: exactly the reference's output
                assert (fp, files) == reference.get(name), (name, landed)
        for name, (fp, files) in previous.items():
            if fp is not None:  # a complete output is never disturbed by a later (killed) run
                assert state.get(name) == (fp, files), (name, landed)
        previous = state
    assert landed >= KILLS, f"only {landed} kills landed before the runs finished"
    _finish(_start(home))
    assert _snapshot(home) == reference
