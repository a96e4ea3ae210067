"""The mock executor validates arguments, answers with shaped bodies, and counts broken schemas."""

from __future__ import annotations

import json

import pytest

from forge.synth.executor import MockExecutor, normalize_schema


def _row(name: str, params: dict | str, responses: dict | None = None) -> dict:
    return {
        "api_id": f"id_{name}",
        "provider": "weather.example",
        "api_name": "Weather",
        "version": "1",
        "function_name": name,
        "parameters": params if isinstance(params, str) else json.dumps(params),
        "responses": json.dumps(responses or {}),
        "license": "MIT",
    }


FORECAST = _row(
    "get_forecast",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
            "date": {"type": "string", "format": "date"},
        },
        "required": ["city"],
    },
    {
        "200": {
            "description": "OK",
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
                "required": ["city", "temperature"],
            },
        },
        "400": {"description": "bad request"},
    },
)
PING = _row("ping", {"type": "object", "properties": {}})
BROKEN = _row("broken", {"type": "object", "properties": {"x": {"type": "strnig"}}})
NOT_JSON = _row("garbled", "{not json")


@pytest.fixture()
def ex() -> MockExecutor:
    return MockExecutor([FORECAST, PING, BROKEN, NOT_JSON], seed=1)


def test_valid_call_returns_response_shaped_by_schema(ex: MockExecutor) -> None:
    res = ex.call("get_forecast", {"city": "Paris", "days": 3})
    assert res.ok and res.validated and res.error is None
    body = json.loads(res.output)
    assert body["city"] == "Paris"  # echoed from the arguments
    assert isinstance(body["temperature"], int | float)


def test_fallback_body_without_response_schema(ex: MockExecutor) -> None:
    body = json.loads(ex.call("ping", {}).output)
    assert body["status"] == "ok" and body["operation"] == "ping"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"city": "Paris", "days": "3"}, "'days' must be integer"),
        ({"days": 3}, "missing required parameter 'city'"),
        ({"city": "Paris", "units": "kelvin"}, "'units' must be one of"),
        ({"city": "Paris", "days": 30}, "'days' violates maximum 14"),
        ({"city": "Paris", "date": "next friday"}, "'date' must be a valid date"),
        ({"city": "Paris", "country": "FR"}, "unknown parameter 'country'"),
        (["Paris"], "arguments must be a JSON object"),
    ],
)
def test_invalid_arguments_get_400_body(ex: MockExecutor, args: object, message: str) -> None:
    res = ex.call("get_forecast", args)
    assert not res.ok and res.validated
    assert res.error_kind == "arguments_invalid"
    err = json.loads(res.output)["error"]
    assert err["code"] == 400 and message in err["message"]
    assert ex.check("get_forecast", args) is not None


def test_unknown_function_is_404(ex: MockExecutor) -> None:
    res = ex.call("nope", {})
    assert not res.ok and not res.validated and res.error_kind == "unknown_function"
    assert json.loads(res.output)["error"]["code"] == 404


@pytest.mark.parametrize("name", ["broken", "garbled"])
def test_invalid_schema_is_counted_not_raised(ex: MockExecutor, name: str) -> None:
    res = ex.call(name, {"x": 1})
    assert not res.ok and not res.validated and res.error_kind == "invalid_schema"
    assert ex.counts["invalid_schema"] == 1


def test_responses_are_deterministic() -> None:
    a = MockExecutor([FORECAST], seed=5).call("get_forecast", {"city": "Oslo"}).output
    b = MockExecutor([FORECAST], seed=5).call("get_forecast", {"city": "Oslo"}).output
    assert a == b


def test_counts_and_duplicates() -> None:
    ex = MockExecutor([FORECAST, FORECAST])
    ex.call("get_forecast", {"city": "Rome"})
    ex.call("get_forecast", {})
    assert ex.counts == {"duplicate_name": 1, "ok": 1, "arguments_invalid": 1}


def test_normalize_openapi_and_bfcl_idioms() -> None:
    schema = normalize_schema(
        {
            "type": "dict",
            "properties": {
                "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                "s": {"type": "string", "nullable": True, "enum": ["a"]},
                "f": {"type": "float", "required": True},
            },
        }
    )
    assert schema["type"] == "object" and schema["required"] == ["f"]
    assert schema["properties"]["n"] == {"type": "integer", "exclusiveMinimum": 0}
    assert (
        schema["properties"]["s"]["type"] == ["string", "null"] and None in schema["properties"]["s"]["enum"]
    )
    assert schema["properties"]["f"] == {"type": "number"}
    ex = MockExecutor(
        [
            _row(
                "openapi_style",
                {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}},
                },
            )
        ]
    )
    assert ex.call("openapi_style", {"n": 1}).ok
    assert ex.call("openapi_style", {"n": 0}).error_kind == "arguments_invalid"
