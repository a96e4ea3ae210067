"""The one annotation map for text annotations: documentation pages, hubconf sources and Python
annotations that could not be evaluated all read the same way."""

from __future__ import annotations

from pathlib import Path

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


def test_a_default_that_is_not_json_reads_the_same_in_every_process() -> None:
    """A default's text goes into the tool's description and so into the corpus: no memory address
    (``<function f at 0x7f...>``), a set's members sorted (their order follows per-process string
    hashing) -- checked in two interpreters with different hash seeds."""
    import os
    import subprocess
    import sys

    from forge.sources.python.signatures import default_text, describe_callable

    def f(key=len, junk=frozenset({"b", "a", "c"}), pat=str.strip, n=3):  # noqa: B008 - the defaults are the point
        return key, junk, pat, n

    params = {p["name"]: p["schema"] for p in describe_callable(f, "f", "function")["params"]}
    assert params["key"] == {"description": "(default: <built-in function len>)"}
    assert params["junk"] == {"description": "(default: frozenset({'a', 'b', 'c'}))"}
    assert params["n"]["default"] == 3
    assert default_text(object()) == "<object object>" and len(default_text("x" * 200)) == 80
    code = (
        "from forge.sources.python.signatures import default_text\n"
        "import difflib\n"
        "print(default_text(difflib.IS_CHARACTER_JUNK), default_text(set('abcdefgh')))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parents[4],  # the repository root: forge importable
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {"<function IS_CHARACTER_JUNK> set({'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'})\n"}
