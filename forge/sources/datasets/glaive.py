"""Glaive function-calling v2 rows: ``{"system": "SYSTEM: You are a helpful assistant with
access to the following functions. Use them if required -\\n{function JSON}\\n\\n{...}",
"chat": "USER: ...\\n\\n\\nASSISTANT: <functioncall> {...} <|endoftext|>\\n\\n\\nFUNCTION
RESPONSE: {...}\\n\\n\\nASSISTANT: ... <|endoftext|>"}``.

Glaive writes call arguments as a single-quoted JSON *string* inside the call object
(``{"name": "f", "arguments": '{"a": 1}'}``), which is not JSON; that form is read explicitly.
A system text "with no access to external functions" gives an empty tool list.
"""

from __future__ import annotations

import json
import re
from typing import Any

from forge.sources.datasets.common import Parsed, RowError, call_id, normalize_tools, tool_call

_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE):\s?")
_CALL = re.compile(r"<functioncall>\s*", re.IGNORECASE)
_QUOTED_ARGS = re.compile(
    r'^\{\s*"name"\s*:\s*"(?P<name>[^"]+)"\s*,\s*"arguments"\s*:\s*\'(?P<args>.*)\'\s*\}$', re.S
)
_EOT = "<|endoftext|>"


def parse_functions(system: str) -> tuple[str, list[dict]]:
    """(system text before the function list, tool documents): every JSON object after
    "Use them if required -" (or after the first '{')."""
    text = system.removeprefix("SYSTEM:").strip()
    start = text.find("{")
    if start < 0:
        return text, []
    head = text[:start].rstrip(" -\n").removesuffix("Use them if required").rstrip(" .-\n")
    dec, objs, i = json.JSONDecoder(), [], start
    while i < len(text):
        if text[i] in " \n\r\t,":
            i += 1
            continue
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError as exc:
            raise RowError("bad_tool_list", f"{exc}: {text[i : i + 80]}") from exc
        objs.append(obj)
    return head.strip() + ".", normalize_tools(objs)


def parse_call(text: str) -> tuple[str, Any]:
    body = text.replace(_EOT, "").strip()
    try:
        obj = json.loads(body)
        return obj.get("name"), obj.get("arguments")
    except ValueError:
        m = _QUOTED_ARGS.match(body)
        if not m:
            raise RowError("bad_functioncall", body[:120]) from None
        return m["name"], m["args"]


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    chat = record.get("chat")
    if not isinstance(chat, str) or not chat.strip():
        raise RowError("missing_chat", str(record)[:120])
    system, tools = parse_functions(record.get("system") or "")
    messages: list[dict] = [{"role": "system", "content": system}] if system and system != "." else []
    pieces = _TURN.split(chat)
    if len(pieces) < 3:
        raise RowError("no_turns", chat[:120])
    pending: list[dict] = []
    n = 0
    for who, text in zip(pieces[1::2], pieces[2::2], strict=True):
        text = text.replace(_EOT, "").strip()
        if who == "USER":
            messages.append({"role": "user", "content": text})
        elif who == "ASSISTANT":
            m = _CALL.search(text)
            if m:
                name, args = parse_call(text[m.end() :])
                call = tool_call(call_id(row_key, n), name, args)
                n += 1
                messages.append(
                    {"role": "assistant", "content": text[: m.start()].strip(), "tool_calls": [call]}
                )
                pending = [call]
            else:
                messages.append({"role": "assistant", "content": text})
        else:  # FUNCTION RESPONSE
            if not pending:
                raise RowError("orphan_tool_result", text[:120])
            c = pending.pop(0)
            messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": text})
    return Parsed(tools, messages)
