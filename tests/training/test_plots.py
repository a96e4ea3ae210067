"""The pictures people look at: a run's loss curve, a mixture's composition, counts as bars, two
scorecards side by side — each a readable PNG from the files the pipeline writes."""

import json

from evaluation.plots import plot_scorecards
from evaluation.scorecard import build_scorecard
from forge.core.plots import plot_counts
from training.plots import plot_loss_curve, read_curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_loss_curve_reads_metrics_jsonl_last_value_wins(tmp_path):
    rows = [{"step": s, "loss": 5.0 / s, "lr": 0.001} for s in range(1, 6)]
    rows += [
        {"step": 3, "loss": 9.9},
        {"step": 4, "eval_loss": 1.5},
        {"text": "resumed"},
        {"step": 5, "final_loss": 1},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = read_curves(metrics)
    assert [s for s, _ in curves["loss"]] == [1, 2, 3, 4, 5]
    assert dict(curves["loss"])[3] == 9.9  # a resumed run's repeated step: the last value
    assert curves["eval_loss"] == [(4, 1.5)]
    out = plot_loss_curve(metrics, tmp_path / "loss.png", "stage")
    assert out is not None and out.read_bytes().startswith(PNG)


def test_no_loss_logged_no_picture(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"text": "starting"}) + "\n")
    assert plot_loss_curve(tmp_path / "metrics.jsonl", tmp_path / "x.png", "t") is None
    assert not (tmp_path / "x.png").exists()


def test_counts_and_scorecards_are_pngs(tmp_path):
    assert plot_counts({"a": 3, "b": 0}, tmp_path / "c.png", "t").read_bytes().startswith(PNG)
    card = build_scorecard(
        {
            "bfcl": {"categories": {"simple_python": {"accuracy": 0.5, "n": 4}}, "summary": {}},
            "ppl_text": {"ppl": 30.0, "nll_per_token": 3.4, "n_tokens": 10},
        }
    )
    out = plot_scorecards({"this": card, "champion (v1)": card}, tmp_path / "s.png", "t")
    assert out.read_bytes().startswith(PNG)
