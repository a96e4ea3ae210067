from __future__ import annotations

import json

import pytest

from contracts.bfcl import SUPPORTED_CATEGORIES, BfclItem, load_category
from contracts.chat import format_tool_calls
from evaluation.bfcl.answers import reference_calls
from evaluation.bfcl.runner import evaluate_bfcl, load_response_file, score_items, summarize


def _all_items(fixtures_dir):
    return [item for category in SUPPORTED_CATEGORIES for item in load_category(fixtures_dir, category)]


def test_evaluate_bfcl_end_to_end_with_a_tiny_model(model_dir, fixtures_dir):
    categories = [
        "simple_python",
        "simple_java",
        "multiple",
        "parallel",
        "irrelevance",
        "live_simple",
        "live_relevance",
    ]
    result = evaluate_bfcl(
        model_dir, fixtures_dir, categories, limit_per_category=2, batch_size=4, max_new_tokens=8
    )
    assert set(result["categories"]) == set(categories)
    assert result["n_items"] == len(result["rows"]) == 14
    for stats in result["categories"].values():
        assert stats["n"] == 2 and stats["accuracy"] == stats["n_valid"] / stats["n"]
        assert sum(stats["error_types"].values()) == stats["n"] - stats["n_valid"]
    # A random model emits garbage: AST items are wrong with a reason, irrelevance items right.
    for row in result["rows"]:
        assert set(row) >= {"id", "category", "text", "decoded", "valid", "error_type"}
        assert isinstance(row["text"], str)
        if row["category"] in ("simple_python", "multiple", "parallel", "live_simple", "simple_java"):
            assert not row["valid"] and row["error_type"]
    assert result["categories"]["irrelevance"]["accuracy"] == 1.0
    assert result["categories"]["live_relevance"]["accuracy"] == 0.0
    assert result["summary"]["non_live_ast"]["complete"] is False
    json.dumps(result)  # the artifact is JSON-serialisable


def test_reference_answers_score_100_percent(fixtures_dir):
    items = _all_items(fixtures_dir)
    texts = [format_tool_calls(reference_calls(i.category, i.functions, i.ground_truth)) for i in items]
    result = score_items(items, None, texts)
    assert result["n_valid"] == result["n_items"] == len(items)
    summary = result["summary"]
    assert summary["non_live_ast"] == {"accuracy": 1.0, "n": summary["non_live_ast"]["n"], "complete": True}
    assert summary["live_ast"]["complete"] and summary["irrelevance"]["accuracy"] == 1.0


def test_bfcl_summary_formula():
    rows = []
    spec = {  # category: (n, n_valid)
        "simple_python": (4, 4),
        "simple_java": (2, 0),
        "simple_javascript": (2, 1),
        "multiple": (2, 2),
        "parallel": (2, 0),
        "parallel_multiple": (2, 1),
        "live_simple": (3, 3),
        "live_multiple": (1, 0),
        "irrelevance": (2, 2),
        "live_irrelevance": (4, 1),
    }
    for category, (n, n_valid) in spec.items():
        rows += [
            {"category": category, "valid": k < n_valid, "error_type": "" if k < n_valid else "x"}
            for k in range(n)
        ]
    summary = summarize(rows)["summary"]
    simple = (1.0 + 0.0 + 0.5) / 3
    assert summary["non_live_simple"]["accuracy"] == pytest.approx(simple)
    assert summary["non_live_ast"]["accuracy"] == pytest.approx((simple + 1.0 + 0.0 + 0.5) / 4)
    assert summary["live_ast"]["accuracy"] == pytest.approx(3 / 4)  # item-weighted
    assert summary["live_ast"]["complete"] is False
    assert summary["irrelevance"]["accuracy"] == pytest.approx((1.0 + 0.25) / 2)


def test_score_items_with_dicts_answers_override_and_missing_responses(fixtures_dir):
    item = load_category(fixtures_dir, "simple_python")[0]
    raw = {"id": item.id, "category": "simple", "question": item.question, "function": item.functions}
    answer = {item.id: item.ground_truth}
    good = format_tool_calls(reference_calls("simple_python", item.functions, item.ground_truth))
    assert score_items([raw], answer, [good])["n_valid"] == 1
    result = score_items([raw], answer, {})
    assert result["rows"][0]["error_type"] == "missing_response" and result["n_valid"] == 0
    decoded = reference_calls("simple_python", item.functions, item.ground_truth)
    assert score_items([raw], answer, [decoded])["n_valid"] == 1
    with pytest.raises(ValueError, match="responses for"):
        score_items([raw], answer, [good, good])


def test_unseen_api_style_items():
    tool = {
        "name": "weather.current",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    }
    items = [
        BfclItem(
            "u1",
            "simple",
            [[{"role": "user", "content": "weather in Paris"}]],
            [tool],
            [{"weather.current": {"city": ["Paris"], "days": ["", 1]}}],
        ),
        BfclItem("u2", "irrelevance", [[{"role": "user", "content": "tell a joke"}]], [tool], None),
    ]
    texts = [
        '<tool_call>\n{"name": "weather.current", "arguments": {"city": "paris"}}\n</tool_call>',
        "Why did...",
    ]
    result = score_items(items, None, texts)
    assert result["n_valid"] == 2 and result["summary"]["overall_mean"]["accuracy"] == 1.0


def test_load_response_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "result": "[f(x=1)]"}\n\n{"id": "b", "result": ""}\n')
    assert load_response_file(path) == {"a": "[f(x=1)]", "b": ""}
    path.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match=":1:"):
        load_response_file(path)


def test_items_past_the_models_positions_are_not_generated_and_say_so(fixtures_dir, tokenizer):
    """A prompt whose tokens and answer budget exceed the model's positions is not run past them (a RoPE
    model would answer without a word, one with learned positions would fail): the item is wrong as
    ``prompt_too_long`` -- an irrelevance item too, it was never asked -- and counted, in the result, the
    CLI-facing summary and the scorecard (a share of the items, not drawn as a score)."""
    from evaluation.bfcl.runner import PROMPT_TOO_LONG, evaluate_items, item_prompt
    from evaluation.generation.generate import generate
    from evaluation.generation.render import render_prompt
    from evaluation.plots import _series
    from evaluation.scorecard import build_scorecard

    from ..conftest import build_model

    items = [i for c in ("simple_python", "irrelevance") for i in load_category(fixtures_dir, c)[:3]]
    lengths = [
        len(tokenizer(render_prompt(tokenizer, item_prompt(i)), add_special_tokens=False)["input_ids"])
        for i in items
    ]
    limit = sorted(lengths)[len(lengths) // 2] + 4  # about half the prompts fit with 4 new tokens
    model = build_model(len(tokenizer))
    model.config.max_position_embeddings = limit
    long = [n + 4 > limit for n in lengths]
    assert 0 < sum(long) < len(items)
    texts = generate(model, tokenizer, [item_prompt(i) for i in items], 4, 2, skip_too_long=True)
    assert [t is None for t in texts] == long
    assert all(isinstance(t, str) for t in generate(model, tokenizer, [item_prompt(i) for i in items], 4, 2))
    result = evaluate_items(model, tokenizer, items, 2, 4)
    assert result["prompts_too_long"] == sum(long)
    for row, cut in zip(result["rows"], long, strict=True):
        assert (row["error_type"] == PROMPT_TOO_LONG) == cut and (not row["valid"] if cut else True)
        assert (row["text"] is None) == cut
    card = build_scorecard({"bfcl": result})
    shares = {r["metric"]: r["value"] for r in card["rows"]}
    assert shares["not generated: prompt_too_long"] == sum(long) / len(items)
    assert not [k for k in _series(card)[0] if "not generated" in k]
