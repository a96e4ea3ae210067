"""The one annotation map for text annotations: documentation pages, hubconf sources and Python
annotations that could not be evaluated all read the same way."""

from __future__ import annotations

import pytest

from forge.sources.python.signatures import annotation_schema, annotation_text_schema, text_param_schema


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int", {"type": "integer"}),
        ("None", {"type": "null"}),
        ("bytes", {"type": "string"}),
        ("complex", {"type": "number"}),
        ("frozenset", {"type": "array"}),
        ("list[int]", {"type": "array"}),
        ("List[int]", {"type": "array"}),  # typing aliases, case-insensitively
        ("typing.Dict[str, int]", {"type": "object"}),
        ("int | None", {"type": ["integer", "null"]}),
        ("Optional[int]", {"type": ["integer", "null"]}),  # null kept, as for ``int | None``
        ("typing.Optional[list[str]]", {"type": ["array", "null"]}),
        ("int | str | int", {"type": ["integer", "string"]}),
        ("dict[str, int | None]", {"type": "object"}),  # a ``|`` inside brackets is not an alternative
        ("Union[int, str]", {"description": "type: Union[int, str]"}),
        ("pathlib.Path | None", {"description": "type: pathlib.Path | None"}),
        ("'Path'", {"description": "type: 'Path'"}),
    ],
)
def test_annotation_text_schema(text: str, expected: dict) -> None:
    assert annotation_text_schema(text) == expected
    assert annotation_schema(text) == expected  # an unevaluated annotation reads the same way


def test_text_param_schema_types_from_annotation_then_default() -> None:
    param = {"name": "indent", "annotation": None, "default": "4", "kind": "keyword_only", "optional": False}
    assert text_param_schema(param, "spaces per level") == {
        "type": "integer",
        "default": 4,
        "description": "spaces per level",
    }
    param = {"name": "sep", "annotation": "str | None", "default": "None", "kind": "keyword_only"}
    assert text_param_schema(param) == {"type": ["string", "null"], "default": None}
    param = {"name": "fn", "annotation": None, "default": "os.sep", "kind": "positional_or_keyword"}
    assert text_param_schema(param) == {"description": "(default: os.sep)"}
    param = {"name": "raw", "annotation": None, "default": "b'x'", "kind": "positional_or_keyword"}
    assert text_param_schema(param) == {"type": "string", "default": "b'x'"}
    assert text_param_schema({"name": "kw", "annotation": "int", "default": None, "kind": "var_keyword"}) == {
        "type": "object",
        "description": "extra keyword arguments (**kw)",
    }
