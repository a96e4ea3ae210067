"""Scorecards side by side as a PNG: per-category accuracy and held-out perplexity, model vs model.

Takes :func:`evaluation.scorecard.build_scorecard` results keyed by a label (``"challenger v3"``,
``"champion v2"``) and draws one bar per model for every accuracy row (BFCL and unseen-API
categories and summary numbers, in scorecard order) and, beside it, every perplexity row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.scorecard import COUNT_ROWS

#: benchmarks whose rows are accuracies (fractions), drawn in the left panel
ACCURACY_BENCHMARKS = ("bfcl", "unseen_api", "humaneval")


def _series(card: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    acc, ppl = {}, {}
    for row in card.get("rows", []):
        value = row.get("value")
        if not isinstance(value, int | float):
            continue
        label = f"{row['benchmark']}/{row['metric']}"
        if row["metric"].startswith(COUNT_ROWS):  # shares of items cut short or left out, not scores
            continue
        if row["benchmark"] in ACCURACY_BENCHMARKS and row["metric"] != "n_problems":
            acc[label] = float(value)
        elif row["metric"] == "ppl":
            ppl[row["benchmark"].removeprefix("ppl_")] = float(value)
    return acc, ppl


def plot_scorecards(cards: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars, one colour per model in ``cards`` order; written to ``path`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {name: _series(card) for name, card in cards.items()}
    acc_keys: list[str] = []
    ppl_keys: list[str] = []
    for acc, ppl in series.values():
        acc_keys += [k for k in acc if k not in acc_keys]
        ppl_keys += [k for k in ppl if k not in ppl_keys]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(9, 1.2 + 0.3 * max(len(acc_keys), 4)), gridspec_kw={"width_ratios": [3, 1.2]}
    )
    width = 0.8 / max(len(series), 1)
    for i, (name, (acc, ppl)) in enumerate(series.items()):
        ys = [k + i * width for k in range(len(acc_keys))]
        left.barh(ys, [100 * acc.get(k, 0.0) for k in acc_keys], height=width, color=f"C{i}", label=name)
        ys = [k + i * width for k in range(len(ppl_keys))]
        right.barh(ys, [ppl.get(k, 0.0) for k in ppl_keys], height=width, color=f"C{i}")
    offset = width * (len(series) - 1) / 2
    left.set_yticks([k + offset for k in range(len(acc_keys))], acc_keys, fontsize=7)
    left.invert_yaxis()
    left.set_xlim(0, 100)
    left.set_xlabel("accuracy (%)")
    left.legend(fontsize=7, loc="lower right")
    left.set_title(title, fontsize=9)
    right.set_yticks([k + offset for k in range(len(ppl_keys))], ppl_keys, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("perplexity (lower: better)")
    right.set_title("general retention", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
