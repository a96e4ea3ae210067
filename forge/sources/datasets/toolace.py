"""ToolACE rows: ``{"system": str, "conversations": [{"from": "user"|"assistant"|"tool",
"value": str}]}``. The system prompt lists the tools as a JSON array after "Here is a list of
functions in JSON format that you can invoke" (BFCL-dialect schemas, ``"type": "dict"``, kept as
written); an assistant turn that is a bracketed Python call list (``[f(a=1), g(b="x")]``) is a
tool-call turn; a tool turn is a JSON list of ``{"name", "results"}``, one per call, in order.
The system prompt is kept without the tool list (the tools column carries it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from forge.sources.datasets.common import (
    Parsed,
    RowError,
    balanced_span,
    call_id,
    loads_maybe,
    normalize_tools,
    parse_literal,
    tool_call,
)
from forge.sources.datasets.pycalls import looks_like_calls, parse_calls

_TOOLS_MARK = re.compile(r"list of functions in JSON format[^\[]*", re.IGNORECASE)
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def split_system(system: str) -> tuple[str, list[dict]]:
    """(system text without the tool list, tool documents)."""
    m = _TOOLS_MARK.search(system)
    if not m:
        return system.strip(), []
    start = m.end()
    span = balanced_span(system, start)
    tools = normalize_tools(parse_literal(span, "tool_list"))
    rest = (
        re.sub(r"\s*Here is a\s*$", "", system[: m.start()]).strip()
        + " "
        + system[start + len(span) :].strip(" .\n")
    )
    return rest.strip(), tools


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    turns = loads_maybe(record.get("conversations"), "conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_conversations", str(record)[:120])
    system, tools = split_system(record.get("system") or "")
    if not tools and record.get("tools"):
        tools = normalize_tools(record["tools"])
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    pending: list[dict] = []
    n = 0
    for t in turns:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            raise RowError("bad_turn", str(t)[:120])
        who, value = t.get("from"), t["value"]
        if who in ("assistant", "gpt") and looks_like_calls(value):
            calls = [
                tool_call(call_id(row_key, n + i), name, args)
                for i, (name, args) in enumerate(parse_calls(value))
            ]
            n += len(calls)
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            pending = calls
        elif who in ("tool", "observation", "function"):
            if not pending:
                raise RowError("orphan_tool_result", value[:120])
            try:
                results = json.loads(value)
            except ValueError:
                results = None
            if not isinstance(results, list) or len(results) != len(pending):
                results = [value] + [""] * (len(pending) - 1)
            for c, r in zip(pending, results, strict=True):
                body = r.get("results", r) if isinstance(r, dict) else r
                text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
                messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": text})
            pending = []
        elif who in _ROLES:
            messages.append({"role": _ROLES[who], "content": value})
        else:
            raise RowError("bad_role", str(who))
    return Parsed(tools, messages)
