"""The mixing-ratio law: fitting recovers known parameters, the rule picks the right share."""

import math

import numpy as np
import pytest

from training.research import (
    PAPER_SHARE,
    choose_share,
    fit_and_choose,
    fit_category,
    fit_law,
    ratios_for_share,
    share_label,
)

SHARES = [0.0, 0.2, 0.36, 0.5, 0.65, 0.8]
SIZES = [2e6, 8e6]


def _records(agent_b=-1.2, general_b=0.15, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in SIZES:
        for s in SHARES:
            for cat, (c, a, b) in {
                "agent": (1.0, 1.0, agent_b),
                "code": (1.2, 0.8, general_b),
                "text": (1.5, 0.9, general_b),
            }.items():
                loss = c + math.exp(a + b * s - 0.1 * math.log(n / 1e6)) + noise * rng.normal()
                out.append({"share": s, "n_params": n, "category": cat, "loss": loss})
    return out


def test_fit_recovers_the_generating_law():
    laws = fit_law(_records())
    assert laws["agent"].form == "c+exp(linear)"
    assert laws["agent"].b == pytest.approx(-1.2, abs=0.05)
    assert laws["agent"].d == pytest.approx(-0.1, abs=0.02)
    assert laws["code"].c == pytest.approx(1.2, abs=0.05)
    assert all(law.rmse < 1e-3 for law in laws.values())


def test_least_squares_fallback_on_two_points():
    law = fit_category([(0.0, 1e6, 5.0), (0.5, 1e6, 4.0)])
    assert law.form == "exp(linear)" and law.c == 0.0
    assert float(law.predict(0.0, 1e6)) == pytest.approx(5.0)
    assert float(law.predict(0.5, 1e6)) == pytest.approx(4.0)


def test_rule_keeps_general_loss_within_tolerance():
    laws = fit_law(_records())
    chosen = choose_share(laws, 8e6, max_share=0.8, tolerance=0.02)
    assert 0.0 < chosen["share"] < 0.8
    assert chosen["predicted_general_loss"] <= chosen["general_loss_at_zero"] * 1.02 + 1e-9
    looser = choose_share(laws, 8e6, max_share=0.8, tolerance=0.2)
    assert looser["share"] >= chosen["share"]
    # no general cost at all: the rule takes the largest share searched
    flat = fit_law(_records(general_b=0.0))
    assert choose_share(flat, 8e6, max_share=0.8)["share"] == pytest.approx(0.8)
    assert chosen["paper_share"] == PAPER_SHARE


def test_fit_and_choose_uses_the_largest_size():
    law = fit_and_choose(_records(noise=0.002), tolerance=0.02)
    assert law["chosen"]["n_params"] == max(SIZES)
    assert set(law["laws"]) == {"agent", "code", "text"}


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="agent and general"):
        fit_law([{"share": 0.0, "n_params": 1e6, "category": "code", "loss": 3.0}] * 2)
    with pytest.raises(ValueError, match=">= 2 points"):
        fit_category([(0.0, 1e6, 3.0)])
    with pytest.raises(ValueError, match="positive"):
        fit_category([(0.0, 1e6, 3.0), (0.5, 1e6, -1.0)])


def test_ratios_for_share():
    assert ratios_for_share(0.36) == {"agent": 0.36, "code": 0.32, "text": 0.32}
    assert ratios_for_share(0.0) == {"code": 0.5, "text": 0.5}
    assert share_label(0.36) == "s036"
    with pytest.raises(ValueError):
        ratios_for_share(1.5)
