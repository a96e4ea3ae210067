"""Text renderings: API docs, API groups, trajectory CPT text, SFT records, template phrases."""

from __future__ import annotations

import datetime as dt
import json
import random

from forge.core.stats import StepStats
from forge.synth.trajectories import synthesize
from forge.text.render import (
    TemplateGenerator,
    action_phrase,
    facts,
    render_api_doc,
    render_api_group,
    render_trajectory_text,
    sft_record,
)

ROW = {
    "api_id": "abc123",
    "provider": "weather.example",
    "api_name": "Weather API",
    "version": "2.1",
    "function_name": "get_forecast",
    "method": "GET",
    "path": "/forecast/{city}",
    "summary": "Returns the forecast for a city.",
    "description": "Daily forecast, up to two weeks ahead.",
    "parameters": json.dumps(
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris."},
                "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 3},
                "units": {"type": "string", "enum": ["metric", "imperial"]},
                "location": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat"],
                },
            },
            "required": ["city"],
        }
    ),
    "responses": json.dumps(
        {
            "200": {
                "description": "OK",
                "schema": {"type": "object", "properties": {"temp": {"type": "number"}}},
            },
            "404": {"description": "Unknown city"},
        }
    ),
    "license": "CC-BY-4.0",
}


def test_api_doc_has_everything_a_reader_needs() -> None:
    doc = render_api_doc(ROW)
    for needle in (
        "weather.example", "Weather API", "2.1", "GET /forecast/{city}", "Returns the forecast for a city.",
        "Daily forecast", "`city` (string, required): City name", "`days` (integer, optional)", "default 3",
        "maximum 14", 'one of "metric", "imperial"', "`lat` (number, required)", "- 200: OK Fields: temp.",
        "- 404: Unknown city",
    ):  # fmt: skip
        assert needle in doc, needle


def test_python_function_doc() -> None:
    row = {**ROW, "method": "function", "path": "json.dumps", "parameters": json.dumps({"type": "object"})}
    doc = render_api_doc(row)
    assert "Python function: `json.dumps`" in doc and "- (none)" in doc


def test_api_group_is_bounded_and_lists_the_rest() -> None:
    rows = [{**ROW, "function_name": f"op_{i}"} for i in range(50)]
    text = render_api_group(rows, max_chars=3000)
    assert len(text) <= 3000 and "## op_0" in text and "50 operations" in text
    assert "Also available" in text and "op_49" in text


def _traj() -> dict:
    rows = [ROW, {**ROW, "api_id": "def456", "function_name": "get_alerts", "summary": "List alerts"}]
    out = synthesize(
        rows, seed=0, per_api=1, patterns={"simple": 1.0}, heldout_providers=set(), stats=StepStats("t"),
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    return next(iter(out))


def test_trajectory_text_has_docs_then_conversation() -> None:
    traj = _traj()
    call = next(m for m in json.loads(traj["messages"]) if m.get("tool_calls"))["tool_calls"][0]
    text = render_trajectory_text(traj, {"abc123": render_api_doc(ROW)})
    assert text.index("# Tools") < text.index("# Conversation") < text.index("User: ")
    assert "Provider: weather.example" in text  # the given doc, not the fallback
    assert f"Assistant calls {call['name']}(" in text and "Observation (" in text
    for name, value in call["arguments"].items():
        assert json.dumps(name) in text and json.dumps(value) in text
    # Without docs: the tool documents themselves, with parameter names.
    bare = render_trajectory_text(traj, None)
    assert "## get_forecast" in bare and "`city` (string, required)" in bare


def test_sft_record_parses_json_columns() -> None:
    traj = _traj()
    rec = sft_record(traj)
    assert set(rec) == {"id", "messages", "tools"} and rec["id"] == traj["trajectory_id"]
    assert rec["messages"][1]["role"] == "user" and rec["tools"][0]["name"] in {"get_forecast", "get_alerts"}
    json.dumps(rec)  # JSONL-ready


def test_action_phrase_and_facts() -> None:
    assert action_phrase(ROW) == "return the forecast for a city"
    assert action_phrase({"summary": "User details", "method": "GET"}) == "get user details"
    assert action_phrase({"summary": "", "function_name": "listOrders", "method": "GET"}) == "get list orders"
    assert facts('{"id": 42, "status": "open", "items": [{"sku": "A1"}]}') == "id 42, status open and sku A1"
    assert facts("not json") == "an empty result"


def test_template_requests_mention_values() -> None:
    gen = TemplateGenerator()
    for seed in range(20):
        rng = random.Random(seed)
        text = gen.write_request([ROW], [{"city": "New York", "days": 5}], pattern="simple", rng=rng)
        assert '"New York"' in text and "days 5" in text
        many = gen.write_request(
            [ROW, ROW], [{"city": "Oslo"}, {"city": "Rome"}], pattern="parallel", rng=rng
        )
        assert "Oslo" in many and "Rome" in many
    answer = gen.write_answer(
        [ROW], [{}], ['{"error": {"code": 400, "message": "bad"}}'], pattern="simple", rng=rng
    )
    assert "failed" in answer and "bad" in answer


def test_api_doc_survives_wrongly_typed_schema_fields() -> None:
    """Spec fields of the wrong type (seen in the OpenAPI directory) render, never raise."""
    hostile = {
        "type": "object",
        "required": [{"not": "a name"}, "q"],
        "properties": {
            "q": {"type": ["string", 3], "description": {"en": "text"}, "items": ["x"]},
            "r": {"type": "array", "items": {"type": "object", "required": True, "properties": {"a": {}}}},
            "s": {"properties": {"t": {"type": None}}, "required": "t"},
        },
    }
    text = render_api_doc({**ROW, "parameters": json.dumps(hostile)})
    assert "`q` (string/3, required)" in text
    assert "`r` (array of object, optional)" in text and "  - `a` (any, optional)" in text
    assert "  - `t` (any, optional)" in text
