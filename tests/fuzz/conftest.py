"""Fuzz targets: load the Hypothesis profile (see ``tests.fuzz.fuzzing``) and print the case counts."""

from __future__ import annotations

from typing import Any

from tests.fuzz.fuzzing import CASES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        terminalreporter.section("fuzz cases per target")
        for target, n in sorted(CASES.items()):
            terminalreporter.write_line(f"{target:<40} {n:>8,}")
        terminalreporter.write_line(f"{'total':<40} {sum(CASES.values()):>8,}")
