"""Process helpers shared by the kill tests (tests/integration/test_kill_graph.py, tests/fuzz/test_orphans.py)."""

from __future__ import annotations

import psutil


def alive(pids: list[int]) -> list[int]:
    """The pids that still run: an exited child waiting to be reaped (a zombie) counts as gone."""
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            pass
    return left
