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
    python bench/flex_decode.py --batches rounds.jsonl --length 12288   # BFCL's own rounds

``--batches`` replays BFCL's own rounds instead (``bench/data/bfcl_multi_turn_rounds.jsonl``, written by
``bench/bfcl_multi_turn_throughput.py --host-only --dump-batches``: 14 rounds of up to 256 prompts, the longest
conversations started first, the last one 30 prompts; each slot's position, the groups, the prompts in
sorted order with the tokens each shares with the next), where the K/V of slots holding the same tokens is
the same, and adds block sharing (``--block-splits``). BFCL's sharing is mostly pairs (908 groups of 2, 630
prompts alone): the synthetic batch flatters the groups. (Until 2026-12-03 the file held the 17 rounds of
the conversations in the data's order.)

(``--device cpu --slots 16 --groups 4 --length 1024``: a smoke run of the script on the reference path.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.generation import grouped  # noqa: E402
from evaluation.generation.kernels import (  # noqa: E402
    FLEX_BLOCK,
    FLEX_DECODE_OPTIONS,
    FLEX_SHARED_SPLIT,
    CascadeGroups,
    block_sources,
    cascade_flex_plan,
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


def load_batches(args: argparse.Namespace) -> list[tuple[list[int], list[tuple[list[int], int]]]]:
    """``--batches``' rounds (``bench/bfcl_multi_turn_throughput.py --host-only --dump-batches``), each padded
    to ``--slots`` slots (the engine decodes every slot of its cache; an unused one reads one position)."""
    out = []
    for line in args.batches.read_text().splitlines():
        record = json.loads(line)
        pos = record["pos"][: args.slots]
        if max(pos) >= args.length:
            raise SystemExit(f"--length {args.length} is below a position of {args.batches} ({max(pos)})")
        groups = [([m for m in members if m < args.slots], n) for members, n in record["groups"]]
        order, lcp, run = [], [], None  # the prompts past --slots left out: their neighbours share the min
        for i, n in zip(record["order"], [*record["lcp"], 0], strict=True):
            if i < args.slots:
                if order:
                    lcp.append(run)
                order.append(i)
                run = n
            else:
                run = min(run, n) if run is not None else 0
        order += range(len(pos), args.slots)  # padding slots share nothing
        lcp += [0] * (len(order) - 1 - len(lcp))
        out.append(
            (pos + [0] * (args.slots - len(pos)), [g for g in groups if len(g[0]) > 1], (order, lcp))
        )  # fmt: skip
    return out


def measure(
    args: argparse.Namespace, positions: list[int], shared: list[tuple[list[int], int]], k: torch.Tensor,
    v: torch.Tensor, q: torch.Tensor, sorted_holders: tuple[list[int], list[int]] | None = None,
) -> tuple[list[tuple[str, float, float]], int, int]:  # fmt: skip
    """Every variant on one decode batch: (name, median ms, max diff vs varlen) rows, live and unique bytes.
    ``sorted_holders`` (slots sorted by what they hold, the tokens each shares with the next): the block
    sharing variants too (``CascadeGroups.fill_blocks``)."""
    device, kv_heads, dim = k.device, k.shape[1], k.shape[3]
    if sorted_holders is not None:  # slots holding the same tokens hold the same K/V: per 16-token chunk,
        # a copy of the first (sorted) slot's that holds them (so every group's and block's copies agree)
        chunk = 16
        src = torch.tensor(block_sources(*sorted_holders, args.length // chunk, chunk), device=device)
        at = torch.arange(src.shape[1], device=device).expand_as(src)
        for cache in (k, v):
            view = cache.view(args.slots, kv_heads, -1, chunk, dim)
            view.copy_(view[src, :, at].permute(0, 2, 1, 3, 4))
    for members, prefix in [] if sorted_holders is not None else shared:  # members hold the first's prefix
        k[members[1:], :, :prefix] = k[members[0], :, :prefix].clone()
        v[members[1:], :, :prefix] = v[members[0], :, :prefix].clone()
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
    plans = [
        (name, flex_plan(pos, kv_heads, args.length, groups if share else None, split, full))
        for name, share, split, full in VARIANTS
        if not getattr(args, "only_shared_split", False) or (share, split) == (True, FLEX_SHARED_SPLIT)
    ]
    for spec in args.packed:  # slots per row : split
        per_row, split = (int(x) for x in spec.split(":"))
        plan = packed_flex_plan(pos, kv_heads, args.length, groups, per_row, split)
        plans.append((f"flex packed, {per_row} slots a row, split {split}", plan))
    if sorted_holders is not None:
        order, lcp = sorted_holders
        blocks = args.length // FLEX_BLOCK
        for split in args.block_splits:
            by_block = CascadeGroups.allocate(args.slots, device)
            by_block.fill_blocks(order, lcp, blocks)
            plans.append(
                (f"flex blocks shared, split {split}", flex_plan(pos, kv_heads, args.length, by_block, split))
            )
    tuned = [
        (f"flex shared, split {FLEX_SHARED_SPLIT}, BLOCK_N {n}, {s} stages, {w} warps",
         flex_plan(pos, kv_heads, args.length, groups, FLEX_SHARED_SPLIT,
                   options=(("BLOCK_N", n), ("num_stages", s), ("num_warps", w))))
        for n, s, w in (map(int, spec.split(":")) for spec in args.options)
    ]  # fmt: skip
    for spec in args.cascade:  # members per level-1 row : split
        per_row, split = (int(x) for x in spec.split(":"))
        plan = cascade_flex_plan(pos, kv_heads, args.length, groups, per_row, split, FLEX_DECODE_OPTIONS)
        plans.append((f"flex cascade, {per_row} a row, split {split}, tuned", plan))
    for spec in args.grouped:
        rows.extend(measure_grouped(args, spec, pos, shared, k, v, q, reference, sorted_holders))
    for name, plan in plans + tuned:
        try:
            out = decode_flex(q, k, v, pos, None, plan=plan)
            diff = (out.float() - reference.float()).abs().max().item()
            ms = time_call(lambda plan=plan: decode_flex(q, k, v, pos, None, plan=plan), args.iters, device)
        except Exception as exc:  # noqa: BLE001  an option set Triton cannot build (shared memory): said, skipped
            print(f"{name}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            continue
        rows.append((name, ms, diff))
    return rows, live, unique


def measure_grouped(
    args: argparse.Namespace, spec: str, pos: torch.Tensor, shared: list[tuple[list[int], int]], k: torch.Tensor,
    v: torch.Tensor, q: torch.Tensor, reference: torch.Tensor, sorted_holders: tuple[list[int], list[int]] | None,
) -> list[tuple[str, float, float]]:  # fmt: skip
    """The ``grouped`` kernel (:mod:`evaluation.generation.grouped`) with ``spec``'s settings
    (CHUNK:NODE_ROWS:PROGRAMS_PER_SM:BLOCK_N:WARPS:STAGES:HEADS_PER_ITEM): every depth of sharing when the
    batch says what the slots hold (``sorted_holders``; its depths rounded down to the 16-token blocks
    :func:`measure` makes equal across the slots holding them), else the groups as they are."""
    before = grouped.settings()
    grouped.configure(spec)
    try:
        return _time_grouped(args, spec, pos, shared, k, v, q, reference, sorted_holders)
    finally:
        grouped.configure(before)


def _time_grouped(
    args: argparse.Namespace, spec: str, pos: torch.Tensor, shared: list[tuple[list[int], int]], k: torch.Tensor,
    v: torch.Tensor, q: torch.Tensor, reference: torch.Tensor, sorted_holders: tuple[list[int], list[int]] | None,
) -> list[tuple[str, float, float]]:  # fmt: skip
    chunk, rows, per_sm, block_n, warps, stages, hpi, *streams = (int(x) for x in spec.split(":"))
    if sorted_holders is None:  # the groups' members side by side, sharing their prefix (what they hold)
        held = pos.tolist()
        order = [m for members, _ in shared for m in members]
        lcp = [
            x for members, n in shared for x in [min(n, *(held[m] for m in members))] * (len(members) - 1) + [0]
        ][: max(len(order) - 1, 0)]  # fmt: skip
        order += [s for s in range(args.slots) if s not in set(order)]
        lcp += [0] * (args.slots - 1 - len(lcp))
    else:
        order, lcp = sorted_holders[0], [n // 16 * 16 for n in sorted_holders[1]]
    tables = grouped.SegmentTables(args.slots, k.shape[1], q.shape[1] // k.shape[1], k.device, chunk=chunk)
    tables.fill(order, lcp, args.slots)
    name = f"grouped, chunk {chunk}, {rows} rows, {per_sm}/SM, BLOCK_N {block_n}, {warps}w {stages}s, {hpi} h"
    name += f", {streams[0]} streams" if streams else ""

    def call() -> torch.Tensor:
        plan = grouped.grouped_plan(pos, tables, k.shape[1], q.shape[1], q.shape[2], args.length)
        return grouped.decode_grouped(q, k, v, pos, plan, None)

    try:
        diff = (call().float() - reference.float()).abs().max().item()
        ms = time_call(call, args.iters, k.device)
    except Exception as exc:  # noqa: BLE001  settings Triton cannot build (shared memory): said, skipped
        print(f"{name}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return []
    if getattr(args, "profile_grouped", False) and k.is_cuda:
        layout, held = tables.layout, pos.tolist()
        per_position = 2 * k.shape[1] * k.shape[3] * k.element_size()
        node = sum(e - b for b, e in zip(layout.begin, layout.end, strict=True)) * per_position
        own = (
            sum(h + 1 - (h if b < 0 else b) for h, b in zip(held, layout.own_begin, strict=True))
            * per_position
        )
        for part, (part_ms, part_bytes) in grouped_parts(
            call, args.iters, {"nodes": node, "own": own}
        ).items():
            total = PARTS.setdefault((name, part), [0.0, 0])
            total[0], total[1] = total[0] + part_ms, total[1] + part_bytes
    return [(name, ms, diff)]


#: --profile-grouped: (setting, part) -> [device ms per call summed over the batches, bytes read]
PARTS: dict[tuple[str, str], list[float]] = {}


def grouped_parts(call, iters: int, read: dict[str, int]) -> dict[str, tuple[float, int]]:
    """Device time per call of each part of a grouped decode (torch.profiler's kernel records): the plan's
    small torch kernels, the node and own ``partials`` launches (in that order each call) and ``merge``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            call()
        torch.cuda.synchronize()
    kernels = sorted(
        (e for e in prof.events() if e.device_type == DeviceType.CUDA), key=lambda e: e.time_range.start
    )
    us: Counter[str] = Counter()
    seen = 0
    for event in kernels:
        if "partials" in event.name:
            part, seen = ("nodes", "own")[seen % 2], seen + 1
        elif "merge" in event.name:
            part = "merge"
        else:
            part = "plan"
        us[part] += event.time_range.elapsed_us()
    return {part: (us[part] / iters / 1e3, read.get(part, 0)) for part in ("plan", "nodes", "own", "merge")}


def run(args: argparse.Namespace) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kv_heads, heads, dim = args.kv_heads, args.kv_heads * args.fold, args.head_dim
    batches = load_batches(args) if args.batches else [batch(args, gen)]
    shape = (args.slots, kv_heads, args.length, dim)
    k = torch.randn(shape, device=device, dtype=dtype)
    v = torch.randn(shape, device=device, dtype=dtype)
    q = torch.randn(args.slots, heads, dim, device=device, dtype=dtype)
    totals: dict[str, list[float]] = {}  # name -> [ms summed over batches, largest diff]
    live = unique = 0
    for positions, shared, *holders in batches:
        rows, b_live, b_unique = measure(args, positions, shared, k, v, q, *holders)
        live, unique = live + b_live, unique + b_unique
        for name, ms, diff in rows:
            total = totals.setdefault(name, [0.0, 0.0])
            total[0], total[1] = total[0] + ms, max(total[1], diff)
    if args.batches:
        sizes = Counter(len(m) for _, shared, _ in batches for m, _ in shared)
        in_groups = sum(k * n for k, n in sizes.items())
        what = (
            f"{len(batches)} decode batches of {args.batches.name} (BFCL rounds; one step's attention each, "
            f"times summed), {args.slots} slots each; {sum(sizes.values())} groups sharing a prefix "
            f"({in_groups} slots), {sum(len(p) for p, _, _ in batches) - in_groups} slots alone"
        )
    else:
        what = f"{args.slots} slots in {args.groups} groups"
    base = totals["varlen (flash kernel, each slot its own)"][0]
    lines = [
        f"# flex decode variants — {date.today()} — {platform.node()} — {name_of(device)}, torch "
        f"{torch.__version__}; {what}, {kv_heads} K/V heads x {args.fold}, head dim {dim}, {dtype}, cache "
        f"{args.length} positions per slot; live {live / 1e9:.2f} GB, unique {unique / 1e9:.2f} GB "
        f"({unique / live:.2f}x); median of {args.iters} calls",
        f"{'variant':44s} {'ms':>8s} {'vs varlen':>10s} {'GB/s live':>10s} {'GB/s unique':>12s} {'max diff':>9s}",
    ]
    for name, (ms, diff) in totals.items():
        lines.append(
            f"{name:44s} {ms:8.3f} {base / ms:9.2f}x {live / ms / 1e6:10.0f} {unique / ms / 1e6:12.0f} {diff:9.4f}"
        )
    if PARTS:
        lines += [
            "# --profile-grouped: device time of each part per call, summed over the batches (torch.profiler), "
            "and the K/V bytes the part reads",
            f"{'setting':60s} {'part':6s} {'ms':>8s} {'GB read':>8s} {'GB/s':>7s}",
        ]
        for (name, part), (ms, read) in PARTS.items():
            rate = f"{read / ms / 1e6:7.0f}" if read and ms else f"{'-':>7s}"
            lines.append(f"{name:60s} {part:6s} {ms:8.3f} {read / 1e9:8.2f} {rate}")
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
    ap.add_argument(
        "--block-splits", nargs="*", type=int, default=[0, 4],
        help="--batches: SPLIT_KV values of the block-sharing variant (0: PyTorch's)",
    )  # fmt: skip
    ap.add_argument(
        "--batches", type=Path,
        help="real decode batches, JSON lines (bfcl_multi_turn_throughput.py --host-only --dump-batches): "
        "each timed, the times summed (--length must hold every position)",
    )  # fmt: skip
    ap.add_argument(
        "--options", nargs="*", default=[],
        help="flex decoding kernel options to try on the default layout (shared reads, split "
        "FLEX_SHARED_SPLIT) as BLOCK_N:STAGES:WARPS (flex_plan's options, EngineConfig.flex_options)",
    )  # fmt: skip
    ap.add_argument(
        "--cascade", nargs="*", default=["4:4", "8:4", "4:1"],
        help="cascade layouts (kernels.cascade_flex_plan, with FLEX_DECODE_OPTIONS) as MEMBERS_PER_ROW:SPLIT",
    )  # fmt: skip
    ap.add_argument(
        "--grouped",
        nargs="*",
        default=["512:32:4:64:4:3:1"],
        help="grouped kernel settings as CHUNK:NODE_ROWS:PROGRAMS_PER_SM:BLOCK_N:WARPS:STAGES:HEADS_PER_ITEM[:STREAMS]",
    )
    ap.add_argument(
        "--only-shared-split",
        action="store_true",
        help=f"of the flex variants only shared reads, split {FLEX_SHARED_SPLIT} (the engine's flex default)",
    )
    ap.add_argument(
        "--profile-grouped",
        action="store_true",
        help="each grouped setting's parts (plan, node and own partials, merge) timed by torch.profiler",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = "\n".join(run(args))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
