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


def test_a_limited_run_says_so_under_the_table():
    """A benchmark run on the first N items of each category (and N conversations of each multi-turn
    one) is BFCL's partial evaluation: the card notes it, in both renderings; a full run has no note."""
    from contracts.bfcl import MULTI_TURN_CATEGORIES

    rows = [
        {"category": c, "valid": True, "error_type": None} for c in ("simple_python", *MULTI_TURN_CATEGORIES)
    ]
    bfcl = {**summarize(rows), "config": {"limit_per_category": 20, "multi_turn_limit_per_category": 2}}
    unseen = {**summarize(rows[:1]), "config": {"limit_per_category": 5}}
    full = {**summarize(rows[:1]), "config": {"limit_per_category": None}}
    card = build_scorecard({"bfcl": bfcl, "unseen_api": unseen, "other": full})
    assert card["notes"] == [
        "bfcl: the first 20 items of each category and the first 2 conversations of each multi-turn category "
        "(a partial evaluation, not comparable to the leaderboard)",
        "unseen_api: the first 5 items of each category (a partial evaluation, not comparable to the leaderboard)",
    ]
    text, markdown = format_scorecard(card), format_scorecard(card, "markdown")
    assert text.splitlines()[-2:] == [f"note: {n}" for n in card["notes"]]
    assert markdown.splitlines()[-1] == f"_{card['notes'][1]}_"
    only_multi = {**summarize(rows[1:]), "config": {"limit_per_category": 3}}  # the shared limit applies
    assert build_scorecard({"bfcl": only_multi})["notes"] == [
        "bfcl: the first 3 conversations of each multi-turn category (a partial evaluation, not comparable "
        "to the leaderboard)"
    ]
    assert build_scorecard({"bfcl": full})["notes"] == [] and "note:" not in format_scorecard(
        build_scorecard({"bfcl": full})
    )
