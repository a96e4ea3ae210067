"""bench/slot_table.py's baseline: the linear deepest-holder scan it times ours against picks what ours picks."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench.slot_table import linear_deepest  # noqa: E402
from evaluation.generation.prefix_cache import SlotTable, block_hashes  # noqa: E402


def test_deepest_holder_is_the_linear_scans_choice():
    """The bisected lookup picks what scanning from the deepest shared block down picks, whatever is accepted."""
    rng = random.Random(3)
    base = [rng.randrange(9) for _ in range(400)]
    table = SlotTable(12, share_min_tokens=16)
    for slot in range(12):  # nested prefixes of base, some diverging
        cut = rng.randrange(0, 400)
        table.store(slot, base[:cut] + [rng.randrange(9) for _ in range(rng.randrange(30))])
        table.used[slot] = rng.randrange(5)

    chosen = set()
    for _ in range(200):
        prompt = base[: rng.randrange(1, 400)] + [rng.randrange(9) for _ in range(5)]
        allowed = {s for s in range(12) if rng.random() < 0.4}
        accept = allowed.__contains__
        got = table._deepest(block_hashes(prompt), accept)
        assert got == linear_deepest(table, block_hashes(prompt), accept)
        chosen.add(got)
    assert None in chosen and len(chosen) > 4  # both outcomes and several slots were exercised


def test_store_keeps_what_the_scanning_store_kept():
    """SlotTable.store (hashes kept over the shared token prefix) leaves the table exactly as the scanning
    baseline does, over stores that extend, cut and rewrite what slots hold."""
    from bench.slot_table import scan_store

    rng = random.Random(5)
    ours, theirs = SlotTable(4, share_min_tokens=16), SlotTable(4, share_min_tokens=16)
    for _ in range(150):
        slot = rng.randrange(4)
        held = ours.ids[slot]
        ids = held[: rng.randrange(len(held) + 1)] + [rng.randrange(6) for _ in range(rng.randrange(60))]
        ours.store(slot, ids)
        scan_store(theirs, slot, ids)
        assert ours._hashes == theirs._hashes and ours._index == theirs._index and ours.ids == theirs.ids
    assert any(ours._hashes)


def test_against_a_revision_times_both_tables_on_the_same_workload():
    import argparse

    from bench.slot_table import against_revision

    args = argparse.Namespace(
        slots=8,
        groups=2,
        prompt=300,
        shared=200,
        reply=8,
        turn=5,
        rounds=2,
        group=4,
        against="HEAD",
        repeats=1,
    )
    text = against_revision(args)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert set(rows) == {"plan", "store", "harvest", "plan+store"}
    assert all(float(r[1]) >= 0 and float(r[2]) >= 0 and r[3].endswith("x") for r in rows.values()), text
