"""The prefix table's host-side work per engine round, ours against the plain forms it replaced, one table.

:class:`evaluation.generation.prefix_cache.SlotTable` runs on the host between the engine's GPU
steps (``engine.admit``, ``engine.harvest``), where the GPU may wait for it. The workload is shaped
like BFCL's multi-turn rounds on an H200 (``bench/results/2026-12-03_bfcl_multi_turn_fed_h200.txt``):
``--slots`` conversations of ~``--prompt`` tokens, in groups sharing a ~``--shared``-token system
prefix (the same tools); each round every conversation is planned (its own slot, the deepest other
holder of its prefix as a copy source), stored, and extended by a ``--reply``-token generation.
Timed in one run, on the same table states:

* ``plan``: :meth:`SlotTable.plan` with the deepest-holder lookup bisected over depths, against the
  linear scan from the deepest shared block down (``plan_linear``, what it did before);
* ``store``: :meth:`SlotTable.store` of each round's prompt, keeping the hashes of the blocks it shares
  with what the slot held (found from the token prefix), against comparing the old and new hash lists
  in a Python loop (``scan_store``, what it did before);
* ``harvest``: :meth:`SlotTable.extend` with the generated tokens, against :meth:`SlotTable.store`
  of prompt + generation (``harvest_store``), what the engine's harvest called before.

    python bench/slot_table.py
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.generation.prefix_cache import SlotTable, block_hashes  # noqa: E402


def linear_deepest(table: SlotTable, hashes: list[int], accept: Callable[[int], bool]) -> int | None:
    """The deepest-holder lookup as a scan from the deepest shared block down (the baseline)."""
    depth = 0
    while depth < len(hashes) and hashes[depth] in table._index:
        depth += 1
    for d in range(depth - 1, -1, -1):
        found = [s for s in table._index[hashes[d]] if accept(s)]
        if found:
            return min(found, key=lambda s: (-table.used[s], s))
    return None


def scan_store(table: SlotTable, slot: int, ids: list[int]) -> None:
    """:meth:`SlotTable.store` as it was: every block hashed against the held ones, then the unchanged
    leading hashes found by a Python loop over both lists (the baseline)."""
    old = table._hashes[slot]
    new = block_hashes(ids, known=table.ids[slot], known_hashes=old)
    keep = 0
    while keep < min(len(old), len(new)) and old[keep] == new[keep]:
        keep += 1
    table._replace(slot, ids, new, keep)


def workload(args: argparse.Namespace) -> tuple[list[list[int]], random.Random]:
    rng = random.Random(0)
    systems = [[rng.randrange(32000) for _ in range(args.shared)] for _ in range(args.groups)]
    prompts = [
        systems[i % args.groups] + [rng.randrange(32000) for _ in range(args.prompt - args.shared)]
        for i in range(args.slots)
    ]
    return prompts, rng


def run_rounds(args: argparse.Namespace, deepest: Callable | None, extend: bool) -> dict[str, float]:
    """Seconds spent planning and harvesting over ``--rounds`` rounds of every conversation."""
    prompts, rng = workload(args)
    table = SlotTable(args.slots, share_min_tokens=64)
    if deepest is not None:  # the baselines
        table._deepest = lambda hashes, accept: deepest(table, hashes, accept)  # type: ignore[method-assign]
        table.store = lambda slot, ids: scan_store(table, slot, ids)  # type: ignore[method-assign]
    seconds = {"plan": 0.0, "store": 0.0, "harvest": 0.0}
    stored_before = 0.0
    for _ in range(args.rounds):
        free = set(range(args.slots))
        busy: set[int] = set()
        plans = []
        start = time.perf_counter()
        for key, prompt in enumerate(prompts):
            if key % args.group == 0:  # a new prefill group: its rows' slots are about to be rewritten
                busy = set()
            hashes = table.hashes(prompt, key)
            plan = table.plan(prompt, hashes, key, free, busy, set())
            table.assign(plan, key)
            free.discard(plan.slot)
            busy.add(plan.slot)
            stored = time.perf_counter()
            table.store(plan.slot, prompt)
            seconds["store"] += time.perf_counter() - stored
            plans.append(plan)
        seconds["plan"] += time.perf_counter() - start - seconds["store"] + stored_before
        stored_before = seconds["store"]
        replies = [[rng.randrange(32000) for _ in range(args.reply)] for _ in prompts]
        start = time.perf_counter()
        for plan, prompt, reply in zip(plans, prompts, replies, strict=True):
            if extend:
                table.extend(plan.slot, reply)
            else:
                table.store(plan.slot, prompt + reply)
        seconds["harvest"] += time.perf_counter() - start
        prompts = [
            p + r + [rng.randrange(32000) for _ in range(args.turn)]
            for p, r in zip(prompts, replies, strict=True)
        ]
    assert table._hashes[plans[0].slot] == block_hashes(
        table.ids[plans[0].slot]
    )  # both forms: the same table
    return seconds


def against_revision(args: argparse.Namespace) -> str:
    """``run_rounds`` with this tree's :class:`SlotTable` and with the one of ``prefix_cache.py`` at git
    revision ``args.against`` (loaded as a module of its own), alternating, best of ``args.repeats``."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "show", f"{args.against}:evaluation/generation/prefix_cache.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prefix_cache_at_rev.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("prefix_cache_at_rev", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    this = sys.modules[__name__]
    ours = (this.SlotTable, this.block_hashes)
    versions = {"this tree": ours, args.against: (module.SlotTable, module.block_hashes)}
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(args.repeats):
            for name, (table, hashes) in versions.items():
                this.SlotTable, this.block_hashes = table, hashes
                seconds = run_rounds(args, None, extend=True)
                best[name] = {k: min(v, best.get(name, {}).get(k, v)) for k, v in seconds.items()}
    finally:
        this.SlotTable, this.block_hashes = ours
    old, new = best[args.against], best["this tree"]
    lines = [
        f"# slot table host work, this tree vs {args.against} — {date.today()} — {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs); {args.slots} slots, {args.groups} prefix groups, "
        f"{args.prompt}-token prompts sharing {args.shared}, {args.rounds} rounds; best of {args.repeats}",
        f"{'step':<12}{'this tree s':>12}{args.against + ' s':>14}{'speed-up':>10}",
    ]
    for step in ("plan", "store", "harvest"):
        lines.append(f"{step:<12}{new[step]:>12.3f}{old[step]:>14.3f}{old[step] / new[step]:>9.2f}x")
    both = new["plan"] + new["store"], old["plan"] + old["store"]
    lines.append(f"{'plan+store':<12}{both[0]:>12.3f}{both[1]:>14.3f}{both[1] / both[0]:>9.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--groups", type=int, default=8, help="distinct system prefixes (tool sets)")
    parser.add_argument("--prompt", type=int, default=5000, help="first-round prompt tokens")
    parser.add_argument("--shared", type=int, default=4500, help="system-prefix tokens shared in a group")
    parser.add_argument("--reply", type=int, default=64)
    parser.add_argument("--turn", type=int, default=40, help="tokens a round adds after the reply")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--group", type=int, default=32, help="conversations per prefill group")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="instead: this tree's prefix_cache.py against the one at git revision REV, on the same workload "
        "(best of --repeats runs each, alternating)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.against:
        text = against_revision(args)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return
    ours = run_rounds(args, None, extend=True)
    base = run_rounds(args, linear_deepest, extend=False)
    lines = [
        f"# slot table host work — {date.today()} — {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs); "
        f"{args.slots} slots, {args.groups} prefix groups, {args.prompt}-token prompts sharing {args.shared}, "
        f"{args.rounds} rounds of {args.reply}-token replies",
        f"{'step':<10}{'ours s':>10}{'baseline s':>12}{'speed-up':>10}  baseline",
        f"{'plan':<10}{ours['plan']:>10.3f}{base['plan']:>12.3f}{base['plan'] / ours['plan']:>9.2f}x  linear deepest-holder scan",
        f"{'store':<10}{ours['store']:>10.3f}{base['store']:>12.3f}{base['store'] / ours['store']:>9.2f}x  "
        "hashes compared by a Python loop",
        f"{'harvest':<10}{ours['harvest']:>10.3f}{base['harvest']:>12.3f}"
        f"{base['harvest'] / ours['harvest']:>9.2f}x  store(prompt + reply)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
