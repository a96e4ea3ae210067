"""bench/bfcl_multi_turn_throughput.py's shared-prefix estimate (what cascade decode attention would read)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench.bfcl_multi_turn_throughput import shared_prefix_positions  # noqa: E402


def test_shared_prefix_is_read_once_per_group_of_a_round():
    system = list(range(100, 196))  # 96 tokens: 6 whole blocks
    a, b = system + [1, 2, 3], system + [4, 5]
    c = [7] * 50  # shares nothing
    own, shared = shared_prefix_positions([[a, b, c]], steps=2)
    tail = 3 * 2 * 1 // 2
    assert own == 2 * (len(a) + len(b) + len(c)) + tail
    assert shared == 2 * (96 + (len(a) - 96) + (len(b) - 96) + len(c)) + tail  # the 96 once, not twice
    # a prefix shorter than min_shared, or in another round, is not shared
    assert shared_prefix_positions([[a[:40] + [1], a[:40] + [2]]], 1) == (82, 82)
    assert shared_prefix_positions([[a], [b]], 2)[1] == shared_prefix_positions([[a], [b]], 2)[0]
