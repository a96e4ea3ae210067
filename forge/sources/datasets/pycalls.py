"""Python-style call lists as ToolACE (and BFCL) write them: ``[get_weather(city="Paris"),
Stock Price API(symbol='AAPL', days=5)]``. Names may hold spaces, dots and dashes (ToolACE has
``Market Trends API``), so names are cut by hand and only each argument list goes through
:mod:`ast`; values must be literals (JSON's true/false/null are accepted too).
"""

from __future__ import annotations

import ast
from typing import Any

from forge.sources.datasets.common import RowError

_JSON_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {
            _literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _literal(node.operand)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    raise RowError("bad_call_syntax", f"not a literal: {ast.dump(node)[:80]}")


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def looks_like_calls(text: str) -> bool:
    t = text.strip()
    return t.startswith("[") and t.endswith("]") and "(" in t and t[1:2] not in ("{", "[", '"')


def parse_calls(text: str) -> list[tuple[str, dict]]:
    """``[(name, arguments)]`` of a bracketed call list; RowError ``bad_call_syntax`` otherwise."""
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        raise RowError("bad_call_syntax", t[:120])
    out = []
    for part in _split_top(t[1:-1]):
        if "(" not in part or not part.endswith(")"):
            raise RowError("bad_call_syntax", part[:120])
        name, argtext = part.split("(", 1)
        name = name.strip()
        if not name:
            raise RowError("bad_call_syntax", part[:120])
        try:
            tree = ast.parse(f"_f({argtext}", mode="eval")
        except SyntaxError as exc:
            raise RowError("bad_call_syntax", f"{part[:100]}: {exc.msg}") from exc
        call = tree.body
        if not isinstance(call, ast.Call) or call.args:
            raise RowError("bad_call_syntax", f"positional arguments: {part[:100]}")
        out.append((name, {kw.arg: _literal(kw.value) for kw in call.keywords if kw.arg is not None}))
    if not out:
        raise RowError("bad_call_syntax", t[:120])
    return out
