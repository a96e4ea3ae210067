"""Generated arguments validate against their schema (property-style: many schemas x many seeds)."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid

import jsonschema
import pytest

from forge.synth.arguments import (
    CannotSatisfy,
    describe_value,
    generate_arguments,
    generate_value,
    phrase_arguments,
    regex_example,
)

SCHEMAS = {
    "flat": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100},
            "verbose": {"type": "boolean"},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        },
        "required": ["city", "limit"],
    },
    "formats": {
        "type": "object",
        "properties": {
            "start_date": {"type": "string", "format": "date"},
            "created_at": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "homepage": {"type": "string", "format": "uri"},
            "request_id": {"type": "string", "format": "uuid"},
            "server": {"type": "string", "format": "ipv4"},
        },
        "required": ["start_date", "created_at", "email", "homepage", "request_id", "server"],
    },
    "enums_const": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["metric", "imperial"]},
            "mode": {"const": "fast"},
            "level": {"type": "integer", "enum": [1, 2, 3]},
        },
        "required": ["unit", "mode", "level"],
    },
    "strings": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
            "sku": {"type": "string", "pattern": "^[a-z0-9]+$", "minLength": 12, "maxLength": 12},
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 40},
        },
        "required": ["code", "sku", "short", "long"],
    },
    "nested": {
        "type": "object",
        "properties": {
            "customer": {
                "type": "object",
                "properties": {
                    "first_name": {"type": "string"},
                    "address": {
                        "type": "object",
                        "properties": {"zip": {"type": "string"}, "country": {"type": "string"}},
                        "required": ["zip"],
                    },
                },
                "required": ["first_name", "address"],
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 2,
                "maxItems": 4,
                "uniqueItems": True,
            },
            "points": {
                "type": "array",
                "items": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
                "minItems": 1,
            },
        },
        "required": ["customer", "tags", "points"],
    },
    "combinators": {
        "type": "object",
        "properties": {
            "target": {"oneOf": [{"type": "integer", "minimum": 10}, {"type": "boolean"}]},
            "filter": {"anyOf": [{"type": "null"}, {"type": "string", "enum": ["open", "closed"]}]},
            "window": {
                "allOf": [
                    {
                        "type": "object",
                        "properties": {"from": {"type": "string", "format": "date"}},
                        "required": ["from"],
                    },
                    {"properties": {"to": {"type": "string", "format": "date"}}, "required": ["to"]},
                ]
            },
            "note": {"type": ["string", "null"], "maxLength": 20},
        },
        "required": ["target", "filter", "window", "note"],
    },
    "numbers": {
        "type": "object",
        "properties": {
            "step": {"type": "integer", "multipleOf": 5, "minimum": 3, "maximum": 40},
            "price": {"type": "number", "minimum": 0.5, "maximum": 0.75},
            "negative": {"type": "integer", "maximum": -10},
        },
        "required": ["step", "price", "negative"],
    },
}


def _validate(schema: dict, value: object) -> None:
    cls = jsonschema.Draft202012Validator
    cls(schema, format_checker=cls.FORMAT_CHECKER).validate(value)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("include_optional", [0.0, 0.5, 1.0])
def test_generated_arguments_validate(name: str, include_optional: float) -> None:
    schema = SCHEMAS[name]
    for seed in range(40):
        args = generate_arguments(schema, random.Random(seed), include_optional=include_optional)
        _validate(schema, args)
        assert set(schema.get("required", [])) <= set(args)


def test_formats_are_real() -> None:
    # jsonschema does not check date-time/uri without extra packages, so check them here.
    for seed in range(20):
        args = generate_arguments(SCHEMAS["formats"], random.Random(seed))
        dt.date.fromisoformat(args["start_date"])
        dt.datetime.fromisoformat(args["created_at"].replace("Z", "+00:00"))
        assert re.match(r"^https?://[\w.-]+/", args["homepage"])
        assert uuid.UUID(args["request_id"]).version == 4
        assert re.match(r"^[^@\s]+@[\w.-]+\.\w+$", args["email"])


def test_optional_properties_follow_probability() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(10)}}
    assert generate_arguments(schema, random.Random(0), include_optional=0.0) == {}
    assert len(generate_arguments(schema, random.Random(0), include_optional=1.0)) == 10


def test_realistic_values_from_names() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "currency": {"type": "string"},
            "user_email": {"type": "string"},
            "limit": {"type": "integer"},
            "lang": {"type": "string"},
        },
    }
    args = generate_arguments(schema, random.Random(3), include_optional=1.0)
    assert args["city"] in {"Paris", "Berlin", "Tokyo", "Nairobi", "Toronto", "Lisbon", "Seoul"}
    assert re.fullmatch(r"[A-Z]{3}", args["currency"])
    assert "@" in args["user_email"]
    assert args["limit"] in {5, 10, 20, 25, 50}
    assert args["lang"] in {"en", "fr", "de", "es", "ja"}


def test_openapi_and_bfcl_dialects() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "radius": {"type": "float", "minimum": 0, "exclusiveMinimum": True},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "label": {"type": "string", "nullable": True},
        },
        "required": ["radius", "point", "label"],
    }
    for seed in range(20):
        args = generate_arguments(schema, random.Random(seed))
        assert isinstance(args["radius"], float) and args["radius"] > 0
        assert all(isinstance(x, int) for x in args["point"])
        assert isinstance(args["label"], str)


def test_deterministic_for_a_seed() -> None:
    schema = SCHEMAS["nested"]
    assert generate_arguments(schema, random.Random(7)) == generate_arguments(schema, random.Random(7))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "(?<=a)b"},  # lookbehind: not invertible by the walker
        {"type": "string", "minLength": 5, "maxLength": 2},
        {"type": "integer", "minimum": 10, "maximum": 1},
        {"type": "string", "format": "uuid", "minLength": 64},
        {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "uniqueItems": True},
    ],
)
def test_unsatisfiable_raises_cannot_satisfy(schema: dict) -> None:
    with pytest.raises(CannotSatisfy):
        generate_value(schema, random.Random(0))


def test_top_level_must_be_object() -> None:
    with pytest.raises(CannotSatisfy):
        generate_arguments({"type": "string"}, random.Random(0))


def test_regex_example_hits_lengths() -> None:
    rng = random.Random(1)
    for pattern, lo, hi in [("^[a-f0-9]+$", 16, 16), ("^(ab|cd){2,}x?$", 9, 12), (r"^\w{3}\.\d+$", 0, 99)]:
        s = regex_example(pattern, rng, min_len=lo, max_len=hi)
        assert re.search(pattern, s) and lo <= len(s) <= hi


def test_phrase_mentions_every_value() -> None:
    args = {"city": "New York", "maxResults": 5, "tags": ["a", "b"], "verbose": True}
    text = phrase_arguments(args)
    assert '"New York"' in text and "max results 5" in text and "a and b" in text and "verbose true" in text
    assert describe_value([1]) == "1" and phrase_arguments({}) == ""
