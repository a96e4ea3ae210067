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
