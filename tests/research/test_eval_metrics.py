"""Bootstrap intervals, the ground-truth log-likelihood, and the comparison table."""

import math

import pytest

from evaluation.bootstrap import accuracy_by_category, bootstrap_ci


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    small = bootstrap_ci([1, 0] * 10, seed=1)
    big = bootstrap_ci([1, 0] * 1000, seed=1)
    assert small["lo"] <= 0.5 <= small["hi"] and big["lo"] <= 0.5 <= big["hi"]
    assert (big["hi"] - big["lo"]) < (small["hi"] - small["lo"])
    assert bootstrap_ci([1, 1, 1])["lo"] == 1.0
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_accuracy_by_category():
    rows = [
        {"category": "a", "valid": True},
        {"category": "a", "valid": False},
        {"category": "b", "valid": True},
    ]
    out = accuracy_by_category(rows)
    assert out["a"]["mean"] == 0.5 and out["b"]["mean"] == 1.0 and out["all"]["n"] == 3


def test_comparison_table_has_intervals_and_retention():
    from evaluation.scorecard import comparison_table

    def result(acc, ppl):
        return {
            "bfcl": {"ci": {"simple_python": {"mean": acc, "lo": acc - 0.1, "hi": acc + 0.1, "n": 10}}},
            "loglik_bfcl": {"all": {"nll_per_token": 2.0}, "categories": {}},
            "perplexity": {"text": {"ppl": ppl, "nll_per_token": math.log(ppl)}},
            "humaneval": {"pass@1": 0.0, "ci": {"lo": 0.0, "hi": 0.0}},
        }

    md = comparison_table({"base": result(0.1, 10.0), "sft_cpt2": result(0.3, 11.0)})
    assert "30.0 [20.0, 40.0]" in md and "+10.0%" in md and "| base |" in md
