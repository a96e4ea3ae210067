"""Unseen-API benchmark items: BFCL's structure, answers that validate, held-out rows only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from forge.core.stats import StepStats
from forge.synth.unseen import build_unseen_items


def _row(provider: str, name: str, summary: str, props: dict, required: list[str]) -> dict:
    return {
        "api_id": f"{provider}:{name}",
        "provider": provider,
        "api_name": provider.split(".")[0],
        "version": "1",
        "function_name": name,
        "method": "GET",
        "summary": summary,
        "description": "",
        "parameters": json.dumps({"type": "object", "properties": props, "required": required}),
        "responses": "{}",
        "license": "MIT",
    }


ROWS = [
    _row("maps.example", "geocode", "Convert an address to coordinates",
         {"address": {"type": "string"}, "country": {"type": "string", "default": "US"}}, ["address"]),
    _row("maps.example", "route", "Compute a driving route",
         {"origin": {"type": "string"}, "destination": {"type": "string"},
          "avoid": {"type": "array", "items": {"type": "string", "enum": ["tolls", "ferries"]}}}, ["origin", "destination"]),
    _row("maps.example", "nested_only", "Nested settings",
         {"cfg": {"type": "object", "properties": {"a": {"type": "integer"}}}}, ["cfg"]),
    _row("fx.example", "convert", "Convert an amount between currencies",
         {"amount": {"type": "number", "minimum": 0}, "from_currency": {"type": "string"},
          "to_currency": {"type": "string"}, "date": {"type": "string", "format": "date"}}, ["amount", "from_currency", "to_currency"]),
]  # fmt: skip
# Official BFCL files (a fixture subset in the official layout).
BFCL_DATA = Path(__file__).resolve().parents[2] / "fixtures" / "bfcl"


@pytest.fixture(scope="module")
def built() -> tuple[list[dict], list[dict], StepStats]:
    stats = StepStats("unseen")
    items, answers = build_unseen_items(ROWS, seed=0, n_items=20, stats=stats)
    return items, answers, stats


def test_structure_matches_bfcl(built) -> None:
    items, answers, stats = built
    assert len(items) == 20 and stats.n_kept == 20
    for item in items:
        assert set(item) == {"id", "category", "question", "function"}
        assert re.fullmatch(rf"unseen_{item['category']}_\d+", item["id"])
        assert isinstance(item["question"], list) and isinstance(item["question"][0], list)
        turn = item["question"][0][0]
        assert set(turn) == {"role", "content"} and turn["role"] == "user" and turn["content"]
        for fn in item["function"]:
            assert set(fn) == {"name", "description", "parameters"} and fn["parameters"]["type"] == "object"
    assert {i["category"] for i in items} == {"simple", "multiple", "parallel", "irrelevance"}
    assert [i["id"] for i in items if i["category"] == "simple"][:2] == ["unseen_simple_0", "unseen_simple_1"]


def test_answers_match_bfcl_format_and_validate(built) -> None:
    items, answers, _ = built
    by_id = {i["id"]: i for i in items}
    irrelevant = {i["id"] for i in items if i["category"] == "irrelevance"}
    assert {a["id"] for a in answers} == set(by_id) - irrelevant  # irrelevance: no answer entry
    for ans in answers:
        item = by_id[ans["id"]]
        functions = {f["name"]: f for f in item["function"]}
        assert len(ans["ground_truth"]) == (1 if item["category"] != "parallel" else len(ans["ground_truth"]))
        for call in ans["ground_truth"]:
            ((name, params),) = call.items()
            schema = functions[name]["parameters"]
            assert set(params) == set(schema["properties"])  # every param listed, as BFCL does
            args = {p: v[0] for p, v in params.items() if "" not in v}  # what the question asks for
            for p in schema["required"]:
                assert "" not in params[p]
            for p, allowed in params.items():
                assert isinstance(allowed, list) and allowed
                if p not in schema["required"] and p not in args:
                    assert "" in allowed
            cls = jsonschema.Draft7Validator
            cls(schema, format_checker=cls.FORMAT_CHECKER).validate(args)
            question = item["question"][0][0]["content"]
            for v in args.values():
                for part in v if isinstance(v, list) else [v]:
                    assert str(part) in question


def test_parallel_and_multiple_shapes(built) -> None:
    items, answers, _ = built
    truth = {a["id"]: a["ground_truth"] for a in answers}
    for item in items:
        if item["category"] == "parallel":
            assert 2 <= len(truth[item["id"]]) <= 3 and len(item["function"]) == 1
        if item["category"] == "multiple":
            assert len(item["function"]) >= 2
            assert next(iter(truth[item["id"]][0])) in {f["name"] for f in item["function"]}
    # Nested parameters never become targets (BFCL matching compares flat values).
    assert all("nested_only" not in json.dumps(t) for t in truth.values())


def test_irrelevance_question_comes_from_another_api(built) -> None:
    items, _, _ = built
    for item in (i for i in items if i["category"] == "irrelevance"):
        names = {f["name"] for f in item["function"]}
        providers = {r["provider"] for r in ROWS if r["function_name"] in names}
        assert len(providers) == 1


def test_deterministic_and_unknown_pattern() -> None:
    assert build_unseen_items(ROWS, seed=5, n_items=8) == build_unseen_items(ROWS, seed=5, n_items=8)
    with pytest.raises(ValueError):
        build_unseen_items(ROWS, seed=0, n_items=1, patterns=("live_simple",))


def test_missing_candidates_are_counted() -> None:
    stats = StepStats("unseen")
    items, _ = build_unseen_items(
        ROWS[:1], seed=0, n_items=4, patterns=("multiple", "irrelevance"), stats=stats
    )
    assert items == [] and stats.dropped == {"no_candidate_multiple": 2, "no_candidate_irrelevance": 2}


def test_same_keys_as_official_files(built) -> None:
    items, answers, _ = built
    official = json.loads((BFCL_DATA / "BFCL_v4_simple_python.json").open().readline())
    official_answer = json.loads((BFCL_DATA / "possible_answer/BFCL_v4_simple_python.json").open().readline())
    assert set(items[0]) - {"category"} == set(official)
    assert set(answers[0]) == set(official_answer)
    assert set(items[0]["function"][0]) == set(official["function"][0])
