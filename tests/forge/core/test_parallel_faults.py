"""ordered_map under faults: an item that raises or kills its worker is that item's failure only.

The work functions are builtins (``eval``) so the spawned workers can unpickle them without
importing this test module: each item is a Python expression, some of which kill their process.
"""

from __future__ import annotations

import pytest

from forge.core.parallel import ItemFailed, TimeLimitExceeded, WorkerDied, ordered_map, time_limit

DIE = "__import__('os')._exit(3)"


def _die_once(flag: str) -> str:
    """An expression that kills its worker the first time it runs, and returns 42 after."""
    return f"42 if __import__('os').path.exists({flag!r}) else (open({flag!r}, 'w').close(), __import__('os')._exit(3))"


def test_exceptions_become_failed_items_in_place() -> None:
    got = list(ordered_map(eval, ["1", "1/0", "2", "[][1]"], 2, errors="return"))
    assert got[0] == 1 and got[2] == 2
    assert isinstance(got[1], ItemFailed) and (got[1].index, got[1].reason) == (1, "ZeroDivisionError")
    assert isinstance(got[3], ItemFailed) and got[3].reason == "IndexError"


def test_in_process_errors_are_returned_too() -> None:
    got = list(ordered_map(eval, ["1", "1/0"], 1, errors="return"))
    assert got[0] == 1 and isinstance(got[1], ItemFailed) and got[1].index == 1


def test_a_worker_that_dies_fails_only_its_item_and_the_run_goes_on() -> None:
    items = ["1", "2", DIE, "4", "5", "6"]
    got = list(ordered_map(eval, items, 2, errors="return"))
    assert [g for g in got if not isinstance(g, ItemFailed)] == [1, 2, 4, 5, 6]
    failed = [g for g in got if isinstance(g, ItemFailed)]
    assert [(f.index, f.reason) for f in failed] == [(2, "worker_died")]
    assert got[2] is failed[0]  # in its own place


def test_a_worker_that_dies_once_is_retried(tmp_path) -> None:
    items = ["1", _die_once(str(tmp_path / "flag")), "3"]
    assert list(ordered_map(eval, items, 2, errors="return")) == [1, 42, 3]


def test_raise_mode_names_the_item_a_worker_died_on() -> None:
    got: list[int] = []
    with pytest.raises(WorkerDied, match="item 1"):
        for value in ordered_map(eval, ["7", DIE, "9"], 2):
            got.append(value)
    assert got == [7]


def test_time_limit_stops_a_python_loop() -> None:
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        while True:
            pass


def test_memory_cap_is_a_memory_error_of_the_item() -> None:
    got = list(ordered_map(eval, ["bytearray(2 * 2**30)", "5"], 2, errors="return", memory_bytes=1 * 2**30))
    assert isinstance(got[0], ItemFailed) and got[0].reason == "MemoryError"
    assert got[1] == 5
