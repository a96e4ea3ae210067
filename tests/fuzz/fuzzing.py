"""Hypothesis profiles for the fuzz targets and a count of the cases each target ran.

``ci`` (the default, in ``make test``): derandomized — the same examples on every run and machine
— and a small budget per target, so the whole suite stays well under a minute on 2 cores.
``fuzz`` (``make fuzz``, ``HEPHAESTUS_FUZZ=fuzz``): random seeds and a hundred times the examples.
Every target runs its cases through :func:`bounded`, which counts them; the counts are printed at the
end of the session ("fuzz cases per target").
"""

from __future__ import annotations

import os
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

from forge.core.parallel import time_limit

_COMMON = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None
)
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=6000, **_COMMON)
settings.load_profile(os.environ.get("HEPHAESTUS_FUZZ", "ci"))


def examples(ci: int) -> int:
    """A target's own budget: ``ci`` examples under the ``ci`` profile, 100x that under ``fuzz``
    (for targets whose cases are slow, e.g. a whole profile validated per case)."""
    return ci * 100 if settings.default.max_examples > 1000 else ci


#: seconds and traced bytes one case may take (far above what a valid input of that size needs)
CASE_SECONDS = float(os.environ.get("HEPHAESTUS_FUZZ_CASE_S", "10"))
CASE_BYTES = 512 * 2**20

CASES: Counter = Counter()


def bounded(target: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one fuzz case: count it under ``target``, fail it past ``CASE_SECONDS`` (a hang) or past
    ``CASE_BYTES`` of Python allocations at peak (an unbounded memory climb). Exceptions pass
    through, so each target states which errors are the project's own clear ones."""
    CASES[target] += 1
    tracemalloc.start()
    try:
        with time_limit(CASE_SECONDS):
            result = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < CASE_BYTES, f"{target}: {peak / 2**20:.0f} MiB allocated at peak for one case"
    return result
