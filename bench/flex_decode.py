"""The ``flex`` decode attention's variants side by side, one table (a BFCL-like multi-turn batch).

One decode step's attention for 256 slots of Llama-3.2-1B's shape (8 K/V heads, 4 query heads each,
head dim 64, bf16) over a static cache, the slots in groups that hold the same first tokens (the same
tools and system prompt; the members' caches are copies of the first member's there), each with its
own rest and a tenth of them long (BFCL's long-context category): what the engine's decode step reads
in BFCL's multi-turn rounds. Each variant of :func:`evaluation.generation.kernels.flex_plan` --
shared-prefix reads on or off, ``SPLIT_KV`` (CTAs per slot and K/V head), full blocks listed or not --
and the packed layout (:func:`packed_flex_plan`: several slots' queries in one kernel row,
each listed block read once for all of them; ``--packed SLOTS:SPLIT``) against the flash kernel's varlen form (:func:`decode_varlen`, the baseline of the ratio column; outputs
compared with it). ``GB/s live``: the bytes of the positions the slots hold over the time (what each
slot reading its own cache moves); ``GB/s unique``: the bytes of distinct positions (a shared prefix
counted once per group), what a kernel that read each shared block once from HBM would move.

    python bench/flex_decode.py [--slots 256] [--groups 16] [--out table.txt]

(``--device cpu --slots 16 --groups 4 --length 1024``: a smoke run of the script on the reference path.)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.generation.kernels import (  # noqa: E402
    FLEX_BLOCK,
    CascadeGroups,
    decode_flex,
    decode_varlen,
    flex_plan,
    packed_flex_plan,
)

#: (name, shared reads, split, full blocks); split 0 is PyTorch's default (1 for 2,048 rows)
VARIANTS = [
    ("flex own, default split, full blocks", False, 0, True),
    ("flex own, default split, partial only", False, 0, False),
    ("flex own, split 4", False, 4, False),
    ("flex shared, default split, full blocks", True, 0, True),
    ("flex shared, default split, partial only", True, 0, False),
    ("flex shared, split 2", True, 2, False),
    ("flex shared, split 4", True, 4, False),
    ("flex shared, split 8", True, 8, False),
]


def batch(args: argparse.Namespace, gen: torch.Generator) -> tuple[list[int], list[tuple[list[int], int]]]:
    """Per slot its position; the groups (members, shared prefix length, whole 16-token blocks)."""
    per = args.slots // args.groups
    pos, groups = [], []
    for g in range(args.groups):
        prefix = int(torch.randint(2000, 5000, (1,), generator=gen)) // 16 * 16
        members = list(range(g * per, (g + 1) * per))
        for _ in members:
            rest = int(torch.randint(100, 2500, (1,), generator=gen))
            if torch.rand(1, generator=gen) < 0.1:
                rest += int(torch.randint(4000, 9000, (1,), generator=gen))
            pos.append(min(prefix + rest, args.length - 1))
        groups.append((members, prefix))
    return pos, groups


def time_call(fn, iters: int, device: torch.device) -> float:
    """Median milliseconds of ``iters`` calls (after 3 warm-ups: compiles, autotunes)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        if device.type != "cuda":  # a smoke run of the script's logic (the reference path)
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def name_of(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"


def run(args: argparse.Namespace) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kv_heads, heads, dim = args.kv_heads, args.kv_heads * args.fold, args.head_dim
    positions, shared = batch(args, gen)
    shape = (args.slots, kv_heads, args.length, dim)
    k = torch.randn(shape, device=device, dtype=dtype)
    v = torch.randn(shape, device=device, dtype=dtype)
    for members, prefix in shared:  # the members' caches hold the first member's prefix
        k[members[1:], :, :prefix] = k[members[0], :, :prefix].clone()
        v[members[1:], :, :prefix] = v[members[0], :, :prefix].clone()
    q = torch.randn(args.slots, heads, dim, device=device, dtype=dtype)
    pos = torch.tensor(positions, device=device)
    groups = CascadeGroups.allocate(args.slots, device)
    groups.fill(shared, args.slots, kv_heads * args.length)
    per_position = 2 * kv_heads * dim * 2  # K and V bytes of one position
    live = sum(p + 1 for p in positions) * per_position
    saved = sum((len(m) - 1) * (prefix // FLEX_BLOCK * FLEX_BLOCK) for m, prefix in shared)
    unique = live - saved * per_position
    reference = decode_varlen(q, k, v, pos, args.length, None)
    ms = time_call(lambda: decode_varlen(q, k, v, pos, args.length, None), args.iters, device)
    rows = [("varlen (flash kernel, each slot its own)", ms, 0.0)]
    for name, share, split, full in VARIANTS:
        plan = flex_plan(pos, kv_heads, args.length, groups if share else None, split, full)
        out = decode_flex(q, k, v, pos, None, plan=plan)
        diff = (out.float() - reference.float()).abs().max().item()
        ms = time_call(lambda plan=plan: decode_flex(q, k, v, pos, None, plan=plan), args.iters, device)
        rows.append((name, ms, diff))
    for spec in args.packed:  # slots per row : split
        per_row, split = (int(x) for x in spec.split(":"))
        plan = packed_flex_plan(pos, kv_heads, args.length, groups, per_row, split)
        out = decode_flex(q, k, v, pos, None, plan=plan)
        diff = (out.float() - reference.float()).abs().max().item()
        ms = time_call(lambda plan=plan: decode_flex(q, k, v, pos, None, plan=plan), args.iters, device)
        rows.append((f"flex packed, {per_row} slots a row, split {split}", ms, diff))
    base = rows[0][1]
    lines = [
        f"# flex decode variants — {date.today()} — {platform.node()} — {name_of(device)}, torch "
        f"{torch.__version__}; {args.slots} slots in {args.groups} groups, {kv_heads} K/V heads x {args.fold}, "
        f"head dim {dim}, {dtype}, cache {args.length} positions per slot; live {live / 1e9:.2f} GB, unique "
        f"{unique / 1e9:.2f} GB ({unique / live:.2f}x); median of {args.iters} calls",
        f"{'variant':44s} {'ms':>8s} {'vs varlen':>10s} {'GB/s live':>10s} {'GB/s unique':>12s} {'max diff':>9s}",
    ]
    for name, ms, diff in rows:
        lines.append(
            f"{name:44s} {ms:8.3f} {base / ms:9.2f}x {live / ms / 1e6:10.0f} {unique / ms / 1e6:12.0f} {diff:9.4f}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=256)
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--length", type=int, default=16384, help="cache positions per slot")
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--fold", type=int, default=4, help="query heads per K/V head")
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu: smoke run")
    ap.add_argument(
        "--packed", nargs="*", default=["4:8", "8:8", "16:8", "16:16", "16:32"],
        help="packed layouts (kernels.packed_flex_plan) as SLOTS_PER_ROW:SPLIT",
    )  # fmt: skip
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = "\n".join(run(args))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
