"""OpenAI chat format: ``{"messages": [...], "tools": [{"type": "function", "function": {...}}]}``
with assistant ``tool_calls`` (``{"id", "type": "function", "function": {"name", "arguments":
JSON text}}``) answered by ``{"role": "tool", "tool_call_id", "content"}`` messages. The legacy
``functions`` / ``function_call`` / ``role: function`` shape is read too.
"""

from __future__ import annotations

from typing import Any

from forge.sources.datasets.common import Parsed, RowError, call_id, loads_maybe, normalize_tools, tool_call


def _content(value: Any) -> str:
    """Text of a message's content (OpenAI also allows a list of ``{"type": "text"}`` parts)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return str(value)


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    raw = loads_maybe(record.get("messages"), "messages")
    if not isinstance(raw, list) or not raw:
        raise RowError("missing_messages", str(record)[:120])
    tools = normalize_tools(record.get("tools") or record.get("functions") or [])
    messages: list[dict] = []
    n = 0
    last_ids: dict[str, str] = {}  # function name -> id of its latest call (legacy role=function)
    for m in raw:
        if not isinstance(m, dict):
            raise RowError("bad_message", str(m)[:120])
        role = m.get("role")
        if role == "assistant":
            calls = []
            listed = m.get("tool_calls") or []
            if not isinstance(listed, list):
                raise RowError("bad_call", f"tool_calls is {type(listed).__name__}")
            for tc in listed:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict):
                    raise RowError("bad_call", str(tc)[:120])
                calls.append(
                    tool_call(tc.get("id") or call_id(row_key, n), fn.get("name"), fn.get("arguments"))
                )
                n += 1
            if isinstance(m.get("function_call"), dict):
                fc = m["function_call"]
                calls.append(tool_call(call_id(row_key, n), fc.get("name"), fc.get("arguments")))
                n += 1
            msg: dict[str, Any] = {"role": "assistant", "content": _content(m.get("content"))}
            if calls:
                msg["tool_calls"] = calls
                last_ids.update({c["name"]: c["id"] for c in calls})
            messages.append(msg)
        elif role in ("tool", "function"):
            name = m.get("name")
            if name is not None and not isinstance(name, str):
                raise RowError("bad_message", f"tool result named {str(name)[:80]}")
            tid = m.get("tool_call_id") or last_ids.get(name or "")
            if not tid:
                raise RowError("orphan_tool_result", str(m)[:120])
            if not name:  # OpenAI tool messages omit the name: take it from the call they answer
                name = next(
                    (c["name"] for x in messages for c in x.get("tool_calls") or [] if c["id"] == tid), ""
                )
            messages.append(
                {"role": "tool", "tool_call_id": tid, "name": name, "content": _content(m.get("content"))}
            )
        elif role in ("system", "user", "developer"):
            messages.append(
                {"role": "system" if role == "developer" else role, "content": _content(m.get("content"))}
            )
        else:
            raise RowError("bad_role", str(role))
    return Parsed(tools, messages)
