"""Bootstrap confidence intervals over benchmark items.

An accuracy is a mean of per-item 0/1 outcomes; its 95% interval is the 2.5th and 97.5th
percentile of the mean over ``n_boot`` resamples of the items with replacement (the percentile
bootstrap). Items, not tokens or categories, are the unit: two checkpoints scored on the same
items can differ by less than either interval's width, so the comparison table prints the
intervals beside the point estimates rather than a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[str, float | int]:
    """Mean of ``values`` with its percentile-bootstrap ``1 - alpha`` interval.

    Returns ``{"mean", "lo", "hi", "n"}``; an empty sequence is an error (no items, no number).
    The seed fixes the resamples so a rerun prints the same interval.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("bootstrap_ci: no values (an interval over zero items is undefined)")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError("bootstrap_ci: n_boot must be >= 1 and alpha in (0, 1)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    means = arr[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(arr.mean()), "lo": float(lo), "hi": float(hi), "n": int(arr.size)}


def accuracy_by_category(
    rows: Iterable[Mapping[str, Any]], *, key: str = "valid", n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, float | int]]:
    """Per-category accuracy with intervals from per-item rows (``category`` and a 0/1 ``key``),
    plus ``all`` over every item (item-weighted, unlike BFCL's unweighted group means)."""
    by_cat: dict[str, list[float]] = {}
    for row in rows:
        by_cat.setdefault(str(row["category"]), []).append(float(bool(row[key])))
    out = {cat: bootstrap_ci(v, n_boot=n_boot, seed=seed) for cat, v in sorted(by_cat.items())}
    every = [v for vals in by_cat.values() for v in vals]
    if every:
        out["all"] = bootstrap_ci(every, n_boot=n_boot, seed=seed)
    return out
