from __future__ import annotations

import pytest

from evaluation.bfcl.type_convert import UnsupportedType, java_value, js_value


@pytest.mark.parametrize(
    ("literal", "type_name", "nested", "expected"),
    [
        ("123", "integer", None, 123),
        ("12.5", "integer", None, "12.5"),  # not an integer literal: stays a string
        ("3.14f", "float", None, 3.14),
        ("3.14", "float", None, "3.14"),  # a Java float needs its f suffix
        ("2.5e3", "double", None, 2500.0),
        ("-9L", "long", None, -9),
        ("true", "boolean", None, True),
        ("yes", "boolean", None, "yes"),
        ("'a'", "char", None, "'a'"),
        ("new int[]{1, 2, 3}", "Array", "integer", [1, 2, 3]),
        ('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String", ["a", "b"]),
        ("new ArrayList<Long>() {{ add(1L); add(2L); }}", "ArrayList", "long", [1, 2]),
        ("new ArrayList<>()", "ArrayList", None, []),
        (
            'new HashMap<String, Object>() {{ put("k", 1); put("s", "v"); }}',
            "HashMap",
            None,
            {"k": 1, "s": "v"},
        ),
        ("new HashMap<>()", "HashMap", None, {}),
        ("whatever", "any", None, "whatever"),
    ],
)
def test_java_values(literal, type_name, nested, expected):
    assert java_value(literal, type_name, nested) == expected


def test_java_unconvertible_types_raise():
    with pytest.raises(UnsupportedType):
        java_value("x", "Set")
    with pytest.raises(UnsupportedType):
        java_value("x", "NoSuchType")


@pytest.mark.parametrize(
    ("literal", "type_name", "nested", "expected"),
    [
        ("'abc'", "String", None, "abc"),
        ("abc", "String", None, "abc"),
        ("42", "integer", None, 42),
        ("4.5", "float", None, 4.5),
        ("10n", "Bigint", None, 10),
        ("false", "Boolean", None, False),
        ("[1, 'two', true]", "array", None, [1, "two", True]),
        ("['a', 'b']", "array", "String", ["a", "b"]),
        ("[[1, 2], [3, 4]]", "array", None, [[1, 2], [3, 4]]),
        ("{key: 'v', n: 3, list: [1, 2]}", "dict", None, {"key": "v", "n": 3, "list": [1, 2]}),
        ("{}", "dict", None, {}),
        ("not an array", "array", None, "not an array"),
    ],
)
def test_js_values(literal, type_name, nested, expected):
    assert js_value(literal, type_name, nested) == expected
