"""A training run's loss curve as a PNG (matplotlib, Agg: no display needed).

Read from the run's ``metrics.jsonl`` (one JSON object per logged step, ``{"step", "loss", ...}``;
``eval_loss`` rows from the periodic evaluation), so the trainer, the CLI and the Dagster asset draw
the same picture from the same file. A resumed run may log a step twice: the last value wins.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: the curves drawn, in this order, when the run logged them (nats per token)
CURVES = ("loss", "eval_loss")
#: the file name of the picture in a run's output_dir (and among its MLflow artifacts)
LOSS_CURVE = "loss_curve.png"


def read_curves(metrics_jsonl: Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` for the metrics of :data:`CURVES`, sorted by step."""
    by_metric: dict[str, dict[int, float]] = {}
    if not metrics_jsonl.exists():
        return {}
    for line in metrics_jsonl.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if "step" not in row:
            continue
        for name in CURVES:
            value = row.get(name)
            if isinstance(value, int | float):
                by_metric.setdefault(name, {})[int(row["step"])] = float(value)
    return {name: sorted(points.items()) for name, points in by_metric.items()}


def plot_loss_curve(metrics_jsonl: Path, path: Path, title: str) -> Path | None:
    """Training (and evaluation) loss against optimizer steps, written to ``path`` as a PNG.

    Returns ``path``, or None when the run logged no loss yet or matplotlib is not installed (a
    GPU image without it still trains; the log says why the picture is missing)."""
    curves = read_curves(metrics_jsonl)
    if not curves.get("loss"):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no loss curve for %s", metrics_jsonl)
        return None
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, name in enumerate(CURVES):
        points = curves.get(name)
        if points:
            style = "-" if name == "loss" else "o--"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, color=f"C{i}", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
