"""Fuzzing the multi-turn call parser: a model's call string is untrusted text, parsed, never evaluated.

The property: ``parse_call`` returns a ``Call`` for any text (never raises, never hangs, never
evaluates: ``10**10**10`` or ``'a' * 10**9`` are refused as non-literal arguments), and ``as_call``
does the same for any decoded value.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluation.bfcl.environments import Call, as_call, parse_call
from tests.fuzz.fuzzing import bounded
from tests.fuzz.test_fuzz_bfcl import json_values, python_args


@st.composite
def call_strings(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=200))
    name = draw(
        st.sampled_from(["cd", "ls", "mv", "exit", "__import__", "os.system", "a.b.c"]) | st.text(max_size=8)
    )
    if kind == 1:
        args = ", ".join(
            f"{draw(st.sampled_from(['folder', 'a', 'x', '']))}={draw(python_args)}"
            for _ in range(draw(st.integers(0, 3)))
        )
        return f"{name}({args})"
    if kind == 2:
        return f"{name}(" + "[" * draw(st.integers(1, 3000)) + "]" * draw(st.integers(0, 3000)) + ")"
    return f"{name}(*args, **{{'a': 1}})"


@given(call_strings())
def test_any_call_string_parses_without_evaluation(text: str) -> None:
    call = bounded("multi_turn_parse_call", parse_call, text)
    assert isinstance(call, Call)
    assert call.error is not None or isinstance(call.kwargs, dict)


@given(st.one_of(json_values, st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
def test_any_decoded_value_becomes_a_call(value) -> None:
    assert isinstance(bounded("multi_turn_as_call", as_call, value), Call)
