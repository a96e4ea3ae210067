"""The BFCL category table drives the reader, the checker's dispatch, the runner's summary groups and
the scorecard's order; nothing reads meaning from a category's name."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import contracts.bfcl as bfcl
from contracts.bfcl import (
    CATEGORIES,
    ORDER_FREE_KINDS,
    OVERALL,
    SCORED_CATEGORIES,
    SUMMARY_GROUPS,
    SUMMARY_ORDER,
    Category,
    group_members,
    groups_in_computation_order,
    load_category,
    load_multi_turn_category,
)
from contracts.bfcl import category as bfcl_category
from evaluation.bfcl.checker import check
from evaluation.bfcl.runner import summarize
from evaluation.scorecard import build_scorecard
from forge.synth.unseen import UNSEEN_PATTERNS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bfcl"


def test_every_fixture_category_is_a_supported_row_and_every_supported_row_has_a_fixture():
    on_disk = {p.name.removeprefix("BFCL_v4_").removesuffix(".json") for p in FIXTURES.glob("BFCL_v4_*.json")}
    assert on_disk == set(SCORED_CATEGORIES)
    for name in on_disk:
        row = bfcl_category(name)
        assert (row.scored or row.multi_turn) and row.benchmark == "bfcl"
        assert (bfcl.answer_file(FIXTURES, name).is_file()) == row.has_answers
        load = load_multi_turn_category if row.multi_turn else load_category
        assert {item.category for item in load(FIXTURES, name)} == {name}


def test_unseen_benchmark_categories_are_rows():
    for pattern in UNSEEN_PATTERNS:
        assert bfcl_category(pattern).scored


def test_table_is_consistent():
    names = [c.name for c in CATEGORIES]
    assert len(names) == len(set(names)) == 23  # 22 scored BFCL v4 categories + unseen "simple"
    groups = {g.name for g in SUMMARY_GROUPS}
    assert all(c.group is None or c.group in groups for c in CATEGORIES)
    assert all(g.parent is None or g.parent in groups for g in SUMMARY_GROUPS)
    assert SUMMARY_ORDER == (*(g.name for g in SUMMARY_GROUPS), OVERALL.name)
    assert group_members("non_live_ast") == (
        ("non_live_simple",),
        ("multiple", "parallel", "parallel_multiple"),
    )
    assert group_members("irrelevance") == ((), ("irrelevance", "live_irrelevance"))
    order = [g.name for g in groups_in_computation_order()]
    assert order.index("non_live_simple") < order.index("non_live_ast")
    with pytest.raises(ValueError, match="unknown BFCL category 'nope'"):
        bfcl_category("nope")


FUNCS = [
    {
        "name": "f",
        "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    },
    {
        "name": "g",
        "parameters": {"type": "dict", "properties": {"y": {"type": "integer"}}, "required": ["y"]},
    },
]
ANSWER = [{"f": {"x": [1]}}, {"g": {"y": [2]}}]
REVERSED = [{"g": {"y": 2}}, {"f": {"x": 1}}]


@pytest.mark.parametrize("name", [c.name for c in CATEGORIES if c.scored and c.language == "python"])
def test_checker_dispatches_on_the_kind(name):
    row = bfcl_category(name)
    verdict = check(name, FUNCS, REVERSED, ANSWER)
    if row.kind == "irrelevance":
        assert verdict.error_type == "irrelevance_error:decoder_success"
        assert check(name, FUNCS, [], None).valid
    elif row.kind == "relevance":
        assert verdict.valid and not check(name, FUNCS, [], None).valid
    elif row.kind in ORDER_FREE_KINDS:
        assert verdict.valid  # calls in any order
    elif row.kind == "multiple":  # as many calls as answers, the first checked against the first answer
        assert verdict.error_type == "simple_function_checker:wrong_func_name"
    else:
        assert verdict.error_type == "simple_function_checker:wrong_count"


def test_changing_a_row_changes_the_dispatch(monkeypatch):
    assert not check("simple_python", FUNCS, REVERSED, ANSWER).valid
    table = {**bfcl._BY_NAME, "simple_python": Category("simple_python", "parallel", "python", False, None)}
    monkeypatch.setattr(bfcl, "_BY_NAME", table)
    assert check("simple_python", FUNCS, REVERSED, ANSWER).valid


def _rows(names, seed=0):
    rng = random.Random(seed)
    return [
        {"category": name, "valid": rng.random() < 0.6, "error_type": "x"}
        for name in names
        for _ in range(rng.randint(1, 5))
    ]


def test_summary_groups_follow_the_table():
    rows = _rows(SCORED_CATEGORIES)
    summary = summarize(rows)["summary"]
    assert list(summary) == [
        "non_live_simple",
        "live_ast",
        "multi_turn",
        "irrelevance",
        "relevance",
        "non_live_ast",
        "overall_mean",
    ]
    n = {c: sum(r["category"] == c for r in rows) for c in SCORED_CATEGORIES}
    for group in SUMMARY_GROUPS:
        subgroups, members = group_members(group.name)
        assert summary[group.name]["n"] == sum(n[c] for c in members) + sum(
            summary[g]["n"] for g in subgroups
        )
        assert summary[group.name]["complete"]
    # One category missing makes its group and the group above it partial.
    partial = summarize([r for r in rows if r["category"] != "simple_java"])["summary"]
    assert not partial["non_live_simple"]["complete"] and not partial["non_live_ast"]["complete"]
    assert partial["live_ast"]["complete"]


def test_unseen_simple_stays_out_of_bfcl_groups():
    summary = summarize(_rows(["simple", "multiple", "parallel", "irrelevance"]))["summary"]
    assert set(summary) == {"non_live_ast", "irrelevance", "overall_mean"}
    assert not summary["non_live_ast"]["complete"] and not summary["irrelevance"]["complete"]


def test_scorecard_prints_summary_numbers_in_table_order():
    result = summarize(_rows(SCORED_CATEGORIES))
    card = build_scorecard({"bfcl": result})
    metrics = [r["metric"] for r in card["rows"]][: len(SUMMARY_ORDER)]
    assert metrics == list(SUMMARY_ORDER)
    headline = {g.name for g in (*SUMMARY_GROUPS, OVERALL) if g.headline}
    assert {k.split("/")[1] for k in card["headline"]} == headline


def _substring_tests_of_categories(path: Path) -> list[str]:
    """``"x" in category``-style comparisons (a string literal tested against a category name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, (ast.In, ast.NotIn)) and "category" in ast.unparse(right):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_reads_meaning_from_category_names():
    files = [*ROOT.glob("evaluation/**/*.py"), *ROOT.glob("bench/*.py"), *ROOT.glob("contracts/*.py")]
    assert files
    assert [hit for f in files for hit in _substring_tests_of_categories(f)] == []
