"""ordered_map: input order kept whatever finishes first, bounded reading ahead, errors at their item."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from forge.core.parallel import ordered_map


def test_order_is_kept_when_later_items_finish_first() -> None:
    def slow_first(i: int) -> int:
        time.sleep(0.02 * (5 - i))
        return i * i

    assert list(ordered_map(slow_first, range(6), 3, threads=True)) == [0, 1, 4, 9, 16, 25]


def test_processes_are_spawned_and_give_the_same_results() -> None:
    items = [49, 4, 10**12, 0, 81]
    assert list(ordered_map(math.isqrt, items, 2)) == [7, 2, 10**6, 0, 9]


def test_one_worker_runs_here() -> None:
    """No pool at all: an unpicklable function works, results are identical."""
    assert list(ordered_map(lambda x: x + 1, [3, 1, 2], 1)) == [4, 2, 3]


def test_error_surfaces_at_its_item_after_earlier_results() -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match="isqrt"):
        for value in ordered_map(math.isqrt, [4, 9, -1, 16, 25], 2):
            got.append(value)
    assert got == [2, 3]


def test_input_is_read_at_most_a_window_ahead() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(100):
            pulled.append(i)
            yield i

    results = ordered_map(lambda x: x, items(), 2, window=5, threads=True)
    assert next(results) == 0
    assert len(pulled) == 5  # the window, not the whole input
    assert list(results) == list(range(1, 100))
