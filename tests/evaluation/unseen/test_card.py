from __future__ import annotations

import json
from pathlib import Path

from evaluation.unseen import card as unseen_card

DOC = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "units": {"type": "string"}},
        "required": ["city"],
    },
}


def _write(bench: Path, truth_units: list) -> None:
    items = [
        {"id": "unseen_simple_0", "category": "simple", "question": [[{"role": "user", "content": "Weather in Oslo?"}]],
         "function": [DOC]},
        {"id": "unseen_irrelevance_0", "category": "irrelevance",
         "question": [[{"role": "user", "content": "Book a flight"}]], "function": [DOC]},
    ]  # fmt: skip
    answers = [
        {"id": "unseen_simple_0", "ground_truth": [{"get_weather": {"city": ["Oslo"], "units": truth_units}}]}
    ]
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (bench / "possible_answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))


def test_card_counts_versions_and_self_checks(tmp_path):
    bench = tmp_path / "bench"
    _write(bench, ["", "metric"])
    facts = unseen_card.write_card(bench, ["example.com"], 3)
    assert facts["by_category"] == {"irrelevance": 1, "simple": 1}
    assert facts["ground_truth_self_check"] == {"n_valid": 2, "n_items": 2}
    card = (bench / "CARD.md").read_text()
    assert card.startswith("---\nformat: ") and facts["version"] in card and "example.com" in card
    assert json.loads((bench / "card.json").read_text())["version"] == facts["version"]
    _write(bench, ["metric"])  # data change -> new version
    assert unseen_card.card_facts(bench)["version"] != facts["version"]


def test_ground_truth_calls_take_first_value_and_omit_optional():
    calls = unseen_card.ground_truth_calls([{"f": {"a": [1, 2], "b": ["", "x"], "c": [False]}}])
    assert calls == [{"f": {"a": 1, "c": False}}]
