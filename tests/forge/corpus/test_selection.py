"""Mixture selection by exact token counts: budgets met, shortfalls honest, epochs counted."""

from __future__ import annotations

import random

import numpy as np
import pytest

from forge.corpus.selection import interleave, select_mixture


def _pool(
    seed: int, n: dict[str, int], lo: int = 50, hi: int = 500
) -> dict[str, tuple[list[str], np.ndarray]]:
    rng = random.Random(seed)
    return {
        cat: ([f"{cat}{i}" for i in range(k)], np.array([rng.randint(lo, hi) for _ in range(k)]))
        for cat, k in n.items()
    }


def _tokens(pool, picks, cat):
    return int(picks[cat].n_tokens.sum())


def test_each_budget_is_met_exactly_with_fill_and_within_one_document_without():
    pool = _pool(0, {"agent": 400, "code": 400, "text": 400})
    picks, report = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 60_000, seed=3)
    for cat in pool:
        p = picks[cat]
        assert _tokens(pool, picks, cat) == 20_000 == report["sources"][cat]["selected_tokens"]
        assert int(p.truncated.sum()) <= 1  # at most one document cut to land on the target
        whole = p.index[~p.truncated]
        assert np.array_equal(p.n_tokens[~p.truncated], pool[cat][1][whole])
        for cut in p.index[p.truncated].tolist():
            assert p.n_tokens[p.truncated][0] < pool[cat][1][cut] and cut not in set(whole.tolist())
        assert report["sources"][cat]["short"] is False and report["sources"][cat]["epochs"] < 1
    assert report["notes"] == [] and report["n_tokens_selected"] == 60_000
    assert sum(report["sources"][c]["truncated_documents"] for c in pool) >= 1  # first-fit alone falls short
    picks, report = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 60_000, seed=3, fill=False)
    for cat in pool:
        got = _tokens(pool, picks, cat)
        assert 20_000 - 50 < got <= 20_000 and abs(got - 20_000) <= 0.01 * 20_000
        assert not picks[cat].truncated.any() and len(set(picks[cat].index.tolist())) == picks[cat].index.size


def test_shortfall_is_reported_not_handed_to_others():
    pool = _pool(1, {"agent": 20, "code": 400, "text": 400})
    agent_total = int(pool["agent"][1].sum())
    picks, report = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 60_000, seed=3)
    agent = report["sources"]["agent"]
    assert agent["short"] is True and agent["selected_tokens"] == agent_total == agent["available_tokens"]
    assert agent["shortfall_tokens"] == 20_000 - agent_total and agent["epochs"] == 1.0
    assert report["sources"]["code"]["selected_tokens"] == 20_000
    assert report["achieved_ratios"]["agent"] == pytest.approx(agent_total / report["n_tokens_selected"])
    assert any("'agent'" in note and "shortfall" in note for note in report["notes"])


def test_repeats_count_epochs_without_replacement():
    pool = _pool(2, {"agent": 10, "code": 400})
    agent_total = int(pool["agent"][1].sum())
    picks, report = select_mixture(pool, {"agent": 1, "code": 1}, 60_000, seed=1, max_epochs=3)
    p = picks["agent"]
    assert int(p.n_tokens.sum()) == 3 * agent_total  # capped at max_epochs
    assert sorted(set(p.epoch.tolist())) == [0, 1, 2]
    for e in range(3):  # each pass uses every document once
        assert sorted(p.index[p.epoch == e].tolist()) == list(range(10))
    assert report["sources"]["agent"]["epochs"] == 3.0 and report["sources"]["agent"]["short"] is True
    picks, report = select_mixture(pool, {"agent": 1, "code": 1}, 60_000, seed=1, max_epochs=1000)
    assert int(picks["agent"].n_tokens.sum()) == 30_000
    assert report["sources"]["agent"]["epochs"] == pytest.approx(30_000 / agent_total, abs=1e-3)
    assert report["sources"]["agent"]["max_epoch"] == int(np.ceil(30_000 / agent_total))


def test_with_replacement_meets_the_budget_and_counts_repeat_uses():
    pool = _pool(4, {"agent": 50, "text": 3000})
    picks, report = select_mixture(
        pool, {"agent": 1, "text": 1}, 40_000, seed=5, sampling="with_replacement", max_epochs=10
    )
    for cat in pool:
        assert int(picks[cat].n_tokens.sum()) == 20_000
    p = picks["agent"]
    assert np.unique(p.index).size < p.index.size  # draws repeat
    for i in set(p.index.tolist()):  # a document's uses are numbered 0, 1, 2, ...
        assert sorted(p.epoch[p.index == i].tolist()) == list(range(int((p.index == i).sum())))
    assert report["sampling"] == "with_replacement"
    assert report["sources"]["agent"]["epochs"] == pytest.approx(20_000 / pool["agent"][1].sum(), abs=1e-3)
    again, _ = select_mixture(
        pool, {"agent": 1, "text": 1}, 40_000, seed=5, sampling="with_replacement", max_epochs=10
    )
    assert np.array_equal(again["agent"].index, p.index)


def test_selection_depends_on_seed_and_ids_not_on_order():
    pool = _pool(3, {"agent": 200, "code": 200, "text": 200})
    ratios = {"agent": 2, "code": 1, "text": 1}
    a, ra = select_mixture(pool, ratios, 20_000, seed=11)
    perm = {c: random.Random(9).sample(range(len(ids)), len(ids)) for c, (ids, _) in pool.items()}
    shuffled = {c: ([ids[i] for i in perm[c]], sizes[perm[c]]) for c, (ids, sizes) in pool.items()}
    b, rb = select_mixture(shuffled, ratios, 20_000, seed=11)
    for c in pool:
        assert sorted(pool[c][0][i] for i in a[c].index) == sorted(shuffled[c][0][i] for i in b[c].index)
    assert ra == rb
    c, _ = select_mixture(pool, ratios, 20_000, seed=12)
    assert set(c["agent"].index.tolist()) != set(a["agent"].index.tolist())


def test_interleave_mixes_sources_and_keeps_every_pick():
    pool = _pool(0, {"agent": 300, "code": 300, "text": 300})
    picks, _ = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 30_000, seed=0)
    names, source, order = interleave(picks, {c: ids for c, (ids, _) in pool.items()}, seed=0)
    assert names == ["agent", "code", "text"] and len({int(s) for s in source[:30]}) == 3
    for s, name in enumerate(names):
        assert sorted(order.index[source == s].tolist()) == sorted(picks[name].index.tolist())
    assert int(order.n_tokens.sum()) == 30_000


def test_bad_input_is_an_error():
    pool = {"agent": (["a", "a"], np.array([5, 5]))}
    with pytest.raises(ValueError, match="repeat"):
        select_mixture(pool, {"agent": 1}, 100, seed=0)
    with pytest.raises(ValueError, match="ratios"):
        select_mixture({}, {"agent": -1}, 100, seed=0)
    with pytest.raises(ValueError, match="sampling"):
        select_mixture({}, {"agent": 1}, 100, seed=0, sampling="bootstrap")
    with pytest.raises(ValueError, match="no tokens"):
        select_mixture({"agent": (["a"], np.array([0]))}, {"agent": 1}, 100, seed=0)
    _, report = select_mixture(
        {"agent": (["a"], np.array([5])), "spare": ([], np.array([]))}, {"agent": 1}, 100, seed=0
    )
    assert report["unused_sources"] == ["spare"]
