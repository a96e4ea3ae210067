"""ShareGPT-style rows with tool roles (LLaMA-Factory's ``sharegpt`` function-calling layout):
``{"conversations": [{"from": "system"|"human"|"gpt"|"function_call"|"observation"|"tool",
"value": str}], "system"?: str, "tools": JSON text}``. A ``function_call`` turn's value is
``{"name", "arguments"}`` JSON, or a list of them for parallel calls; the next ``observation``
(or ``tool``) turn answers them — a JSON list with one result per call, or one text for all.
"""

from __future__ import annotations

import json
from typing import Any

from forge.sources.datasets.common import Parsed, RowError, call_id, loads_maybe, normalize_tools, tool_call

_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    turns = loads_maybe(record.get("conversations"), "conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_conversations", str(record)[:120])
    tools = normalize_tools(record.get("tools") or [])
    messages: list[dict] = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        messages.append({"role": "system", "content": record["system"]})
    pending: list[dict] = []
    n = 0
    for t in turns:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            raise RowError("bad_turn", str(t)[:120])
        who, value = t.get("from"), t["value"]
        if who == "function_call":
            payload = loads_maybe(value, "function_call")
            payload = payload if isinstance(payload, list) else [payload]
            calls = []
            for p in payload:
                if not isinstance(p, dict):
                    raise RowError("bad_call", str(p)[:120])
                calls.append(tool_call(call_id(row_key, n), p.get("name"), p.get("arguments")))
                n += 1
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            pending = calls
        elif who in ("observation", "tool"):
            if not pending:
                raise RowError("orphan_tool_result", value[:120])
            results: Any = None
            if len(pending) > 1:
                try:
                    results = json.loads(value)
                except ValueError:
                    results = None
            if isinstance(results, list) and len(results) == len(pending):
                parts = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in results]
            else:
                parts = [value] + [""] * (len(pending) - 1)
            for c, part in zip(pending, parts, strict=True):
                messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": part})
            pending = []
        elif who in _ROLES:
            messages.append({"role": _ROLES[who], "content": value})
        else:
            raise RowError("bad_role", str(who))
    return Parsed(tools, messages)
