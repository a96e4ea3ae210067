"""ToolBench / ToolLLaMA rows: ``{"id", "conversations": [{"from": "system"|"user"|"assistant"|
"function", "value": str}]}``. The system prompt lists the APIs after "you have access to the
following APIs:" (a Python repr, or JSON); assistant turns are ``Thought: ...\\nAction: name\\n
Action Input: {json}``; function turns are the observations. The pseudo-tool ``Finish`` ends the
episode: ``give_answer`` becomes the final assistant text, ``give_up_and_restart`` rejects the
row (``gave_up``: a failed episode is no training example). Thoughts stay as assistant content.
"""

from __future__ import annotations

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

_APIS_MARK = re.compile(r"following APIs:\s*", re.IGNORECASE)
_STEP = re.compile(
    r"^\s*(?:Thought:\s*(?P<thought>.*?))?\s*Action:\s*(?P<action>[^\n]+?)\s*\n\s*Action Input:\s*(?P<input>.*)$",
    re.S,
)
_ROLES = {"user": "user", "human": "user", "system": "system"}


def split_system(system: str) -> tuple[str, list[dict]]:
    m = _APIS_MARK.search(system)
    if not m or m.end() >= len(system) or system[m.end()] != "[":
        return system.strip(), []
    span = balanced_span(system, m.end())
    apis = parse_literal(span, "tool_list")
    if not isinstance(apis, list):
        raise RowError("bad_tool_list", span[:120])
    tools = normalize_tools([a for a in apis if isinstance(a, dict) and a.get("name") != "Finish"])
    return system[: m.start()].strip(), tools


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    turns = loads_maybe(record.get("conversations"), "conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_conversations", str(record)[:120])
    messages: list[dict] = []
    tools: list[dict] = []
    pending: dict | None = None
    n = 0
    finished = False
    for t in turns:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            raise RowError("bad_turn", str(t)[:120])
        who, value = t.get("from"), t["value"]
        if who == "system":
            system, found = split_system(value)
            tools = tools or found
            messages.append({"role": "system", "content": system})
        elif who in ("assistant", "gpt"):
            m = _STEP.match(value)
            if not m:
                messages.append({"role": "assistant", "content": value.strip()})
                continue
            thought, action, raw_input = (m["thought"] or "").strip(), m["action"].strip(), m["input"].strip()
            if action == "Finish":
                args = loads_maybe(raw_input or "{}", "arguments")
                if not isinstance(args, dict) or args.get("return_type") != "give_answer":
                    raise RowError("gave_up", str(args)[:120])
                messages.append({"role": "assistant", "content": str(args.get("final_answer") or thought)})
                finished = True
                continue
            pending = tool_call(call_id(row_key, n), action, raw_input or "{}")
            n += 1
            messages.append({"role": "assistant", "content": thought, "tool_calls": [pending]})
        elif who in ("function", "tool", "observation"):
            if pending is None:
                raise RowError("orphan_tool_result", value[:120])
            messages.append(
                {"role": "tool", "tool_call_id": pending["id"], "name": pending["name"], "content": value}
            )
            pending = None
        elif who in _ROLES:
            messages.append({"role": _ROLES[who], "content": value})
        else:
            raise RowError("bad_role", str(who))
    if not finished:
        raise RowError("no_final_answer", "episode has no Finish/give_answer step")
    return Parsed(tools, messages)
