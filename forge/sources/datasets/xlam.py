"""APIGen / xLAM function-calling rows: ``query`` (text), ``tools`` and ``answers`` (JSON text,
or already parsed). ``tools`` entries use either JSON Schema or xLAM's flat parameter map
(``{"city": {"type": "str, optional", "description": ..., "default": ...}}``); ``answers`` is a
list of ``{"name", "arguments"}`` made in one parallel turn. An empty ``answers`` list (the
xLAM irrelevance set) becomes a text reply saying no tool fits (noted as
``irrelevance_answer_templated``: the dataset carries no reply text).
"""

from __future__ import annotations

from typing import Any

from forge.sources.datasets.common import Parsed, RowError, call_id, loads_maybe, normalize_tools, tool_call

NO_TOOL_REPLY = "None of the available functions can help with this request, so I can't call any of them."


def parse(record: Any, row_key: str) -> Parsed:
    if not isinstance(record, dict):
        raise RowError("not_an_object", str(record)[:120])
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RowError("missing_query", str(record)[:120])
    if "answers" not in record:
        raise RowError("missing_answers", str(record)[:120])
    tools = normalize_tools(record.get("tools"))
    answers = loads_maybe(record.get("answers"), "answers") or []
    if not isinstance(answers, list):
        raise RowError("bad_answers", f"answers is {type(answers).__name__}")
    calls = []
    for i, a in enumerate(answers):
        if not isinstance(a, dict):
            raise RowError("bad_call", str(a)[:120])
        calls.append(tool_call(call_id(row_key, i), a.get("name"), a.get("arguments")))
    messages: list[dict] = [{"role": "user", "content": query.strip()}]
    notes = []
    if calls:
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
    else:
        messages.append({"role": "assistant", "content": NO_TOOL_REPLY})
        notes.append("irrelevance_answer_templated")
    return Parsed(tools, messages, notes)
