"""Fuzzing BFCL answer parsing and the checker: a model's reply is untrusted text.

The property: ``parse_tool_calls`` returns a ``ParseResult`` for any text (never raises, never
hangs, e.g. on ``10**10**10`` or a thousand nested brackets) and ``check`` turns any parse into a
``Verdict`` for every scored category of the fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from contracts.bfcl import load_category
from evaluation.bfcl.checker import Verdict, check
from evaluation.bfcl.parse import ParseResult, parse_tool_calls
from tests.fuzz.fuzzing import bounded

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "bfcl"
CATEGORIES = ["simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
              "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_relevance"]  # fmt: skip
ITEMS = {c: load_category(DATA, c)[0] for c in CATEGORIES}
NAMES = sorted({f["name"] for item in ITEMS.values() for f in item.functions})

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
python_args = st.one_of(
    st.integers().map(str), st.floats(allow_nan=False).map(repr), st.text(max_size=10).map(repr),
    st.sampled_from(["10**10**10", "-(-(-1))", "[[[[]]]]", "{'a': [1, (2, 3)]}", "None", "x.y", "f(1)",
                     "lambda: 0", "1 if 2 else 3", "'a' * 10**9", "2**64", "...", "b'x'", "1e309"]),
)  # fmt: skip


@st.composite
def replies(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(max_size=300))
    name = draw(st.sampled_from(NAMES) | st.text(max_size=12))
    if kind == 1:  # Python call lists, as BFCL's prompt asks
        args = ", ".join(f"{draw(st.sampled_from(['a', 'base', 'x', 'unit', '']))}={draw(python_args)}"
                         for _ in range(draw(st.integers(0, 4))))  # fmt: skip
        return draw(st.sampled_from(["[{c}]", "{c}", "```python\n[{c}]\n```", "[{c}, {c}]", "[{c}"])).format(
            c=f"{name}({args})"
        )
    if kind == 2:  # our chat template's <tool_call> blocks
        body = draw(st.one_of(st.builds(lambda a: json.dumps({"name": name, "arguments": a}), json_values),
                              st.text(max_size=60)))  # fmt: skip
        return draw(
            st.sampled_from(
                [
                    "<tool_call>{b}</tool_call>",
                    "<tool_call>{b}",
                    "<think>x</think><tool_call>\n{b}\n</tool_call>",
                ]
            )
        ).format(b=body)
    if kind == 3:
        return "[" * draw(st.integers(1, 3000)) + name + "]" * draw(st.integers(0, 3000))
    return f"[{name}(" + "(" * draw(st.integers(1, 3000)) + ")]"


@given(replies(), st.sampled_from(CATEGORIES))
def test_any_reply_parses_and_scores(text: str, category: str) -> None:
    parsed = bounded("bfcl_parse", parse_tool_calls, text)
    assert isinstance(parsed, ParseResult)
    item = ITEMS[category]
    verdict = bounded("bfcl_check", check, category, item.functions, parsed, item.ground_truth)
    assert isinstance(verdict, Verdict)


@given(st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=3), max_size=4),
       st.sampled_from(CATEGORIES))  # fmt: skip
def test_checker_takes_any_decoded_value(decoded: list, category: str) -> None:
    item = ITEMS[category]
    assert isinstance(
        bounded("bfcl_check_decoded", check, category, item.functions, decoded, item.ground_truth), Verdict
    )
