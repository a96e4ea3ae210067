from __future__ import annotations

import pytest

from evaluation.bfcl.parse import parse_tool_calls


def test_single_and_multiple_tool_call_blocks():
    text = (
        'Sure.<tool_call>\n{"name": "math.sum", "arguments": {"numbers": [1, 2.5]}}\n</tool_call>\n'
        '<tool_call>\n{"name": "spotify.play", "arguments": {"artist": "Maroon 5", "duration": 15}}\n</tool_call>'
    )
    result = parse_tool_calls(text)
    assert result.ok and result.style == "tool_call"
    assert result.calls == [
        {"math.sum": {"numbers": [1, 2.5]}},
        {"spotify.play": {"artist": "Maroon 5", "duration": 15}},
    ]


def test_arguments_as_json_string_are_accepted():
    result = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": "{\\"a\\": 1}"}\n</tool_call>')
    assert result.calls == [{"f": {"a": 1}}] and result.ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', "invalid JSON"),
        ('<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>', "name"),
        ('<tool_call>\n{"name": "f", "arguments": [1]}\n</tool_call>', "must be an object"),
        ("<tool_call>\n[1, 2]\n</tool_call>", "JSON object"),
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}', "unterminated"),
    ],
)
def test_malformed_tool_calls_are_errors_not_exceptions(text, reason):
    result = parse_tool_calls(text)
    assert not result.ok and reason in result.error


def test_partial_failure_keeps_good_calls_and_reports_the_bad_one():
    text = '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><tool_call>\nnope\n</tool_call>'
    result = parse_tool_calls(text)
    assert result.calls == [{"f": {}}] and "tool_call 1" in result.error


def test_python_call_list():
    result = parse_tool_calls(
        '[func(a=1, b="x"), mod.other(c=[1, 2], d={"k": (1, 2)}, e=-3.5, f=True, g=None)]'
    )
    assert result.ok and result.style == "python"
    assert result.calls == [
        {"func": {"a": 1, "b": "x"}},
        {"mod.other": {"c": [1, 2], "d": {"k": (1, 2)}, "e": -3.5, "f": True, "g": None}},
    ]


def test_python_call_without_brackets_and_code_fences():
    assert parse_tool_calls("```\nfunc(a=2**10, b=x, c=3*4.0)\n```").calls == [
        {"func": {"a": 1024, "b": "x", "c": 12.0}}
    ]


def test_python_call_never_evaluates_code():
    result = parse_tool_calls('[f(a=__import__("os").system("echo pwned"), b=10**10**10)]')
    assert result.ok
    args = result.calls[0]["f"]
    assert args["a"] == "__import__('os').system('echo pwned')"  # kept as text, not run
    assert args["b"] == "10 ** 10 ** 10"


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_empty_output_is_no_call(text):
    result = parse_tool_calls(text)
    assert result.calls == [] and result.ok


@pytest.mark.parametrize(
    "text", ["I cannot help with that.", "[1, 2, 3]", "f(1, 2)", "f(**kw)", "[f(a=1), 3]", "(lambda: 1)()"]
)
def test_prose_and_non_calls_decode_to_nothing_with_a_reason(text):
    result = parse_tool_calls(text)
    assert result.calls == [] and result.error


def test_garbage_never_raises():
    for text in [
        "<tool_call>",
        "</tool_call><tool_call>",
        "[[[[",
        "\x00\x01",
        "f(a=" * 50,
        "<think>x</think>",
    ]:
        result = parse_tool_calls(text)
        assert isinstance(result.calls, list)


def test_think_block_is_ignored():
    text = '<think>maybe <tool_call>\n{"name": "no"}\n</tool_call></think><tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    assert parse_tool_calls(text).calls == [{"f": {}}]


def test_model_text_python_warns_about_parses_without_a_warning_line():
    import warnings

    from evaluation.bfcl.environments import parse_call

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calls = parse_tool_calls("[f(a=1if 1 else 2), g(1in [1])]")
        one = parse_call("f(x=1if 1 else 2)")
    assert calls.calls == [] and calls.error == "unsupported expression: 1 if 1 else 2"
    assert one.error  # parsed (Python only warned), then refused as not a literal
    assert not [w for w in caught if issubclass(w.category, SyntaxWarning)], caught
