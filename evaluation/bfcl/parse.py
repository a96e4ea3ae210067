"""Turn model text into BFCL's decoded form: ``[{func_name: {arg: value}}, ...]``.

Two output styles are read:

* ours (the chat format of :mod:`contracts.chat`): one or more
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks, any text around them ignored,
  read by :func:`contracts.chat.parse_tool_call_blocks`;
* BFCL's prompting style: a Python list of calls ``[func(a=1, b="x"), other(c=[1, 2])]``, read with
  :mod:`ast` and never evaluated (arithmetic on number literals is folded; other expressions become
  their source text, as the official decoder does for names and positional-only calls).

Parsing never raises. A malformed output gives ``ParseResult(calls, error)`` with ``error`` set; the
checker scores it as a decoding failure (or as "no call" for relevance categories). Text with no call
at all is ``calls == []`` and no error: the answer the irrelevance categories want.
"""

from __future__ import annotations

import ast
import operator
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from contracts.chat import has_tool_call, parse_tool_call_blocks

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_BIN_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_EXPONENT = 64  # folding 10**10**10 would hang; larger powers stay as text


@dataclass(frozen=True)
class ParseResult:
    """Decoded calls plus the reason decoding failed (``None`` when it did not)."""

    calls: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None
    style: str = "none"  # "tool_call", "python" or "none"

    @property
    def ok(self) -> bool:
        return self.error is None


class _Unsupported(ValueError):
    pass


def parse_tool_calls(text: str) -> ParseResult:
    """Decode ``text`` (a model's reply) into calls; never raises."""
    try:
        return _parse(text if isinstance(text, str) else str(text))
    except Exception as exc:  # noqa: BLE001 - a parse failure is a scored wrong answer, never a crash
        return ParseResult([], f"unexpected parse failure: {type(exc).__name__}: {exc}", "none")


def _parse(text: str) -> ParseResult:
    text = _THINK.sub("", text)
    if has_tool_call(text):
        calls, errors = parse_tool_call_blocks(text)
        return ParseResult(calls, "; ".join(errors) or None, "tool_call")
    stripped = text.strip("`\n ")
    if stripped.startswith("python\n"):
        stripped = stripped[len("python\n") :]
    if not stripped:
        return ParseResult([], None, "none")
    return _parse_python_calls(stripped)


# ----------------------------------------------------------------------- Python call lists
def parse_expression(source: str) -> ast.Expression:
    """``ast.parse(source, mode="eval")`` of model output, without the ``SyntaxWarning`` lines
    (``1if``, ``1and``: "invalid decimal literal") that Python writes to stderr for text a model
    produces by the thousand; a ``SyntaxError`` still raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(source, mode="eval")


def _parse_python_calls(text: str) -> ParseResult:
    source = text.strip().strip("'")
    if not source.startswith("["):
        source = "[" + source
    if not source.endswith("]"):
        source = source + "]"
    try:
        tree = parse_expression(source)
    except (SyntaxError, ValueError) as exc:
        return ParseResult([], f"not a function call list: {exc}", "none")
    body = tree.body
    nodes = [body] if isinstance(body, ast.Call) else getattr(body, "elts", None)
    if nodes is None:
        return ParseResult([], "not a function call list", "none")
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return ParseResult([], f"list element is not a call: {ast.unparse(node)[:80]}", "python")
        try:
            calls.append(_call(node))
        except _Unsupported as exc:
            return ParseResult([], str(exc), "python")
    return ParseResult(calls, None, "python")


def _dotted_name(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        raise _Unsupported(f"call target is not a name: {ast.unparse(node)[:80]}")
    return ".".join(reversed(parts))


def _call(node: ast.Call) -> dict[str, dict[str, Any]]:
    if node.args:
        raise _Unsupported(f"positional arguments are not allowed: {ast.unparse(node)[:80]}")
    if any(keyword.arg is None for keyword in node.keywords):
        raise _Unsupported("**kwargs expansion is not allowed")
    return {_dotted_name(node.func): {keyword.arg: _value(keyword.value) for keyword in node.keywords}}


def _value(node: ast.expr) -> Any:
    """A literal's Python value, without evaluating code."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        if type(operand) in (int, float, complex):
            return -operand if isinstance(node.op, ast.USub) else operand
        raise _Unsupported(f"unary operator on a non-number: {ast.unparse(node)[:80]}")
    if isinstance(node, ast.List):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(item) for item in node.elts)
    if isinstance(node, ast.Set):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _Unsupported("dict unpacking is not allowed")
        return {_value(key): _value(value) for key, value in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.BinOp):
        return _fold(node)
    if isinstance(node, ast.Name):
        return node.id  # a variable name stands for itself, as in BFCL's decoder
    if isinstance(node, ast.Call):
        return ast.unparse(node) if not node.keywords else _call(node)
    if isinstance(node, (ast.Subscript, ast.Attribute, ast.Lambda)):
        return ast.unparse(node)
    raise _Unsupported(f"unsupported expression: {ast.unparse(node)[:80]}")


def _fold(node: ast.BinOp) -> Any:
    """Fold arithmetic on number literals (``2**10``, ``3*4``); anything else stays as its text."""
    op = _BIN_OPS.get(type(node.op))
    try:
        left, right = _value(node.left), _value(node.right)
    except _Unsupported:
        return ast.unparse(node)
    numbers = (int, float)
    if op is None or type(left) not in numbers or type(right) not in numbers:
        return ast.unparse(node)
    if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
        return ast.unparse(node)
    try:
        return op(left, right)
    except (ArithmeticError, ValueError):
        return ast.unparse(node)
