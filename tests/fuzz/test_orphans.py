"""Worker processes die with their parent: ``kill -9`` of a run leaves none of its processes behind.

Each test starts a real parent (the OpenAPI ingest, trajectory synthesis, module introspection,
the crawler), waits until its workers exist, kills the parent with SIGKILL, and then finds every
process that descended from it gone (an exited child waiting to be reaped counts as gone).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.processes import alive

ROOT = Path(__file__).resolve().parents[2]


def _kill_parent_and_check(
    cmd: list[str],
    ready: Callable[[list[psutil.Process]], bool],
    *,
    env: dict | None = None,
    cwd: Path | None = None,
    ready_s: float = 60,
    gone_s: float = 15,
) -> None:
    """Run ``cmd``; once ``ready(descendants)`` (within ``ready_s``), SIGKILL it; assert its
    descendants are all gone within ``gone_s``."""
    proc = subprocess.Popen(
        cmd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    pids: list[int] = []
    try:
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the parent exited before its workers were seen: {proc.stderr.read()[-2000:]!r}")
            kids = psutil.Process(proc.pid).children(recursive=True)
            if ready(kids):
                pids = [k.pid for k in kids]
                break
            time.sleep(0.05)
        else:
            pytest.fail("the parent never started its workers")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + gone_s
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive(pids) == [], f"orphans left by the killed parent: {alive(pids)}"
    finally:
        for pid in alive(pids):  # do not leak them into the rest of the test run
            psutil.Process(pid).kill()
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def _workers(kids: list[psutil.Process], n: int) -> bool:
    """At least ``n`` multiprocessing workers (spawned ``python -c 'from multiprocessing.spawn ...'``)."""
    found = 0
    for k in kids:
        try:
            found += "spawn_main" in " ".join(k.cmdline())
        except psutil.NoSuchProcess:
            pass
    return found >= n


def _many_operations_specs(folder: Path, n_specs: int = 16, n_ops: int = 1500) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_specs):
        paths = {
            f"/r{i}/{{id}}": {
                "get": {
                    "operationId": f"op{i}",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
            for i in range(n_ops)
        }
        spec = {"openapi": "3.0.0", "info": {"title": f"s{s}", "version": "1"}, "paths": paths}
        (folder / f"p{s:02d}.example.json").write_text(json.dumps(spec))
    return folder


def test_openapi_ingest_workers_die_with_it(tmp_path: Path) -> None:
    specs = _many_operations_specs(tmp_path / "specs")
    script = textwrap.dedent(f"""
        from forge.sources.openapi.ingest import write_openapi_parquet
        if __name__ == "__main__":
            for _ in range(100):
                write_openapi_parquet({str(specs)!r}, {str(tmp_path / "out")!r}, workers=2, shard_bytes=1)
    """)
    _kill_parent_and_check([sys.executable, "-c", script], lambda kids: _workers(kids, 2))


def test_synthesis_workers_die_with_it(tmp_path: Path) -> None:
    specs = _many_operations_specs(tmp_path / "specs", n_specs=4, n_ops=1000)
    script = textwrap.dedent(f"""
        from forge.sources.openapi.ingest import write_openapi_parquet
        from forge.synth.parallel import synthesize_to_parquet
        if __name__ == "__main__":
            write_openapi_parquet({str(specs)!r}, {str(tmp_path / "apis")!r})
            for seed in range(100):
                synthesize_to_parquet({str(tmp_path / "apis")!r}, {str(tmp_path / "out")!r}, seed=seed,
                                      per_api=1, heldout_providers=[], workers=2, chunk_ops=100)
    """)
    _kill_parent_and_check([sys.executable, "-c", script], lambda kids: _workers(kids, 2))


def test_introspection_children_die_with_it(tmp_path: Path) -> None:
    (tmp_path / "sleepy_a.py").write_text("import time\ntime.sleep(120)\n")
    (tmp_path / "sleepy_b.py").write_text("import time\ntime.sleep(120)\n")
    script = textwrap.dedent("""
        from forge.core.stats import StepStats
        from forge.sources.python.introspect import introspect_modules
        introspect_modules(["sleepy_a", "sleepy_b"], StepStats("m"), timeout_s=120, workers=2)
    """)

    def ready(kids: list[psutil.Process]) -> bool:
        return sum(1 for k in kids if "forge.sources.python.introspect" in " ".join(k.cmdline())) >= 2

    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    _kill_parent_and_check([sys.executable, "-c", script], ready, env=env)


class _SlowPages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_crawl_parsers_die_with_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(30):
        links = "".join(f'<a href="p{j}.html">p{j}</a>' for j in range(30))
        (site / f"p{i}.html").write_text(
            f"<html><body><h1>page {i}</h1><p>{'text ' * 200}</p>{links}</body></html>"
        )
    handler = lambda *a, **k: _SlowPages(*a, directory=str(site), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        cmd = [sys.executable, "-m", "forge.crawler", base + "p0.html", "--db", str(tmp_path / "c.duckdb"),
               "--allow-host", "127.0.0.1", "--no-robots", "--min-delay", "0.5", "--workers", "2",
               "--max-depth", "3"]  # fmt: skip
        _kill_parent_and_check(cmd, lambda kids: _workers(kids, 1), env={"TQDM_DISABLE": "1"})
    finally:
        server.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_servers_stop_with_it(tmp_path: Path) -> None:
    """``make ui`` killed with -9 (no chance to stop its servers): the kernel tells ``dagster dev``
    (SIGINT) and MLflow (SIGTERM) to stop, and they take their own children down with them."""
    cmd = [sys.executable, "-m", "orchestration.ui", "--profile", "micro",
           "--dagster-port", str(_free_port()), "--mlflow-port", str(_free_port())]  # fmt: skip
    env = {
        "HEPHAESTUS_HOME": str(tmp_path / "home"),
        "HEPHAESTUS_PROFILE": "micro",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "MLFLOW_TRACKING_URI": "",
    }
    (tmp_path / "dagster_home").mkdir()

    def ready(kids: list[psutil.Process]) -> bool:  # both servers and dagster's webserver are running
        lines = []
        for k in kids:
            try:
                lines.append(" ".join(k.cmdline()))
            except psutil.NoSuchProcess:
                pass
        return any("dagster_webserver" in c for c in lines) and any("uvicorn" in c for c in lines)

    _kill_parent_and_check(cmd, ready, env=env, ready_s=180, gone_s=60)
