from __future__ import annotations

from evaluation.bfcl.runner import summarize
from evaluation.scorecard import build_scorecard, format_scorecard


def _bfcl():
    rows = [
        {"category": "simple_python", "valid": True, "error_type": ""},
        {"category": "multiple", "valid": False, "error_type": "x"},
    ]
    return summarize(rows)


def test_scorecard_rows_and_formats():
    card = build_scorecard(
        {
            "model": "sft-v1",
            "bfcl": _bfcl(),
            "perplexity": {"ppl": 12.5, "nll_per_token": 2.5257, "n_tokens": 1000},
        }
    )
    metrics = {(r["benchmark"], r["metric"]): r["value"] for r in card["rows"]}
    assert metrics[("bfcl", "simple_python")] == 1.0 and metrics[("bfcl", "multiple")] == 0.0
    assert metrics[("bfcl", "non_live_ast (partial)")] == 0.5
    assert metrics[("perplexity", "ppl")] == 12.5
    assert card["headline"]["perplexity/ppl"] == 12.5
    text = format_scorecard(card)
    lines = text.splitlines()
    assert lines[0] == "Scorecard: sft-v1" and "100.00%" in text and "12.500" in text
    assert len({len(line) for line in lines[1:3]}) == 1  # header and rule line up
    markdown = format_scorecard(card, style="markdown")
    assert (
        "| bfcl | simple_python | 100.00% | 1 |" in markdown
        and markdown.count("\n| ") == len(card["rows"]) + 2
    )  # header, rule, rows


def test_multi_turn_conversations_ended_early_are_rows_beside_the_score():
    """A multi_turn score of 0 because every conversation outgrew the model's context says so."""
    from contracts.bfcl import MULTI_TURN_CATEGORIES
    from evaluation.plots import _series

    rows = [
        {"category": c, "valid": False, "error_type": "multi_turn:force_terminated"}
        for c in MULTI_TURN_CATEGORIES
    ]
    result = {**summarize(rows), "multi_turn_stopped": {"prompt_too_long": 3, "step_limit": 1}}
    card = build_scorecard({"bfcl": result})
    metrics = {r["metric"]: (r["value"], r["n"]) for r in card["rows"]}
    assert metrics["multi_turn"] == (0.0, 4)
    assert metrics["multi_turn ended early: prompt_too_long"] == (0.75, 4)
    assert metrics["multi_turn ended early: step_limit"] == (0.25, 4)
    names = [r["metric"] for r in card["rows"]]
    assert names.index("multi_turn") < names.index("multi_turn ended early: prompt_too_long")
    assert "| bfcl | multi_turn ended early: prompt_too_long | 75.00% | 4 |" in format_scorecard(
        card, "markdown"
    )
    assert not [k for k in _series(card)[0] if "ended early" in k]  # not drawn as a score
    assert "multi_turn ended early" not in " ".join(card["headline"])
    # nothing stopped, or no multi-turn: no such rows
    assert not [r for r in build_scorecard({"bfcl": _bfcl()})["rows"] if "ended early" in r["metric"]]
