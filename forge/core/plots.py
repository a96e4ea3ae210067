"""Counts as a horizontal bar chart PNG (matplotlib, Agg): what an ingest step did, at a glance.

A crawl's funnel (pages fetched, stored, not modified, skipped by reason) or a dataset ingest's rows
kept and dropped per reason read faster as bars than as a JSON blob; the asset shows the picture
beside its tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def plot_counts(counts: Mapping[str, int | float], path: Path, title: str, xlabel: str = "count") -> Path:
    """One bar per entry of ``counts`` (in its order, labelled with the value), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = list(counts), [float(v) for v in counts.values()]
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.3 * max(len(labels), 2)))
    bars = ax.barh(range(len(labels)), values, color=[f"C{i % 10}" for i in range(len(labels))])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, padding=2)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values + [1.0]) * 1.2)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
