"""What every dataset connector shares: the parsed-conversation record, tool-document
normalization, argument validation against each tool's JSON Schema, pattern inference, and the
mapping to a contracts.tables.TRAJECTORIES row.

A format module turns one dataset record into a :class:`Parsed` (tools + normalized messages) or
raises :class:`RowError` with a short reason; :func:`build_row` does the rest. Calls from public
datasets are never executed here (``executed`` is False); ``valid`` says whether the arguments
validate against the tool's schema (BFCL type names normalized as forge.synth.executor does), and the
row's ``is_valid`` is True only when every call names a listed tool and validates.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from forge.core.io import sha256_text
from forge.synth.executor import MockExecutor

_PY_TYPES = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
    "number": "number", "double": "number", "bool": "boolean", "boolean": "boolean", "list": "array",
    "array": "array", "tuple": "array", "set": "array", "sequence": "array", "dict": "object",
    "object": "object", "mapping": "object", "any": None,
}  # fmt: skip


class RowError(ValueError):
    """A dataset record that cannot be mapped; ``reason`` is the counted drop reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Parsed:
    """One conversation in normalized form (the normalized conversation of ``contracts.tables.TRAJECTORIES``), before validation."""

    tools: list[dict]
    messages: list[dict]
    notes: list[str] = field(default_factory=list)  # events worth counting (e.g. templated answer)


def loads_maybe(value: Any, what: str) -> Any:
    """A JSON value that datasets store either as JSON text or already parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise RowError(f"bad_{what}_json", f"{exc}: {value[:120]}") from exc
    return value


def balanced_span(text: str, start: int) -> str:
    """The bracketed span starting at ``text[start]`` ('[' or '{'), quotes respected."""
    opener = text[start]
    closer = {"[": "]", "{": "}", "(": ")"}[opener]
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    raise RowError("unbalanced_brackets", text[start : start + 120])


def parse_literal(text: str, what: str) -> Any:
    """JSON, or failing that a Python literal (ToolBench prints its API list with repr())."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise RowError(f"bad_{what}", f"{type(exc).__name__}: {text[:120]}") from exc


def _flat_param_schema(spec: dict) -> dict:
    """xLAM-style ``{"param": {"type": "str, optional", "description", "default"}}`` -> JSON Schema."""
    props, required = {}, []
    for name, p in spec.items():
        p = p if isinstance(p, dict) else {"description": str(p)}
        raw = str(p.get("type") or "")
        optional = "optional" in raw.lower() or "default" in p
        base = re.split(r"[\[,(\s|]", raw.strip(), maxsplit=1)[0].lower()
        sub: dict[str, Any] = {k: v for k, v in p.items() if k not in ("type", "required")}
        json_type = _PY_TYPES.get(base)
        if json_type:
            sub["type"] = json_type
        if raw and not json_type and base not in _PY_TYPES:
            sub["x-original-type"] = raw  # keep what we could not map, validate nothing on it
        if sub.get("default") in ("", None):
            sub.pop("default", None)
        props[name] = sub
        if not optional and p.get("required", True) is not False:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def normalize_tool(tool: Any) -> dict:
    """A tool document (name, description, JSON Schema parameters; rendered by ``contracts.chat``) from the shapes datasets use: OpenAI's
    ``{"type": "function", "function": {...}}`` wrapper, JSON Schema or BFCL-dialect
    ``parameters`` (kept as written), or xLAM's flat parameter map (converted to JSON Schema)."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict) and "name" not in tool:
        tool = tool["function"]
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"].strip():
        raise RowError("bad_tool", str(tool)[:120])
    params = tool.get("parameters", tool.get("arguments"))
    if params in (None, "", [], {}):
        params = {"type": "object", "properties": {}}
    params = loads_maybe(params, "tool_parameters")
    if not isinstance(params, dict):
        raise RowError("bad_tool", f"{tool['name']}: parameters is {type(params).__name__}")
    is_schema = "properties" in params or params.get("type") in ("object", "dict") or "$schema" in params
    if not is_schema:
        params = _flat_param_schema(params)
    return {
        "name": tool["name"].strip(),
        "description": str(tool.get("description") or ""),
        "parameters": params,
    }


def normalize_tools(tools: Any) -> list[dict]:
    tools = loads_maybe(tools, "tools") if tools is not None else []
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise RowError("bad_tools", f"tools is {type(tools).__name__}")
    return [normalize_tool(t) for t in tools]


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict:
    """A normalized tool call; arguments given as JSON text are parsed (bad JSON is a RowError). The
    id is the string tool results answer to: anything else (a list, a number) is a RowError."""
    if not isinstance(name, str) or not name.strip():
        raise RowError("bad_call", f"call without a name: {str(name)[:80]}")
    if not isinstance(call_id, str) or not call_id:
        raise RowError("bad_call_id", f"{name.strip()[:80]}: call id {str(call_id)[:80]}")
    args = loads_maybe(arguments, "arguments") if arguments not in (None, "") else {}
    if not isinstance(args, dict):
        raise RowError("bad_arguments", f"{name}: arguments are {type(args).__name__}")
    return {"id": call_id, "name": name.strip(), "arguments": args}


_ERROR_BODY = re.compile(r'"error"\s*:\s*"?[^",}\s]')


def infer_pattern(messages: list[dict], tools: list[dict]) -> str:
    """simple | parallel | multiple | parallel_multiple | multi_step | irrelevance | error_recovery,
    from the conversation's shape (the same labels synthesize() uses)."""
    turns = [m["tool_calls"] for m in messages if m.get("role") == "assistant" and m.get("tool_calls")]
    if not turns:
        return "irrelevance"
    if len(turns) > 1:
        names = [c["name"] for c in turns[0]]
        tool_errors = [
            m
            for m in messages
            if m.get("role") == "tool" and re.search(r'"error"\s*:\s*"?[^",}\s]', m.get("content") or "")
        ]
        if tool_errors and any(c["name"] in names for c in turns[1]):
            return "error_recovery"
        return "multi_step"
    calls = turns[0]
    distinct = {c["name"] for c in calls}
    if len(calls) > 1:
        return "parallel" if len(distinct) == 1 else "parallel_multiple"
    return "multiple" if len(tools) > 1 else "simple"


def validate_calls(messages: list[dict], tools: list[dict]) -> tuple[list[dict], str | None]:
    """Per-call records (format of TRAJECTORIES.calls) and the row's invalid reason (None: valid).

    Reasons: ``unknown_function`` (the call names no listed tool), ``invalid_schema`` (the tool's
    own schema is broken), ``arguments_invalid``."""
    rows = [{"function_name": t["name"], "parameters": t["parameters"]} for t in tools]
    ex = MockExecutor(rows, strict_unknown=True)
    answered = {m.get("tool_call_id"): m.get("content") or "" for m in messages if m.get("role") == "tool"}
    calls = []
    for m in messages:
        for c in m.get("tool_calls") or []:
            error = None
            if c["name"] not in ex:
                error = f"unknown_function: {c['name']}"
            else:
                broken = ex.validator(c["name"])[1]
                problem = ex.check(c["name"], c["arguments"])
                error = f"invalid_schema: {broken}" if broken else problem and f"arguments_invalid: {problem}"
            calls.append({
                "id": c["id"], "name": c["name"], "api_id": None, "executed": False,
                "valid": error is None, "error": error, "expected_error": False,
            })  # fmt: skip
    # A rejected call that the tool answered with an error and that a later valid call to the same
    # function corrects is the dataset teaching recovery (as synthesize's error_recovery does).
    for i, c in enumerate(calls):
        if (
            c["error"]
            and c["error"].startswith("arguments_invalid")
            and _ERROR_BODY.search(answered.get(c["id"], ""))
        ):
            c["expected_error"] = any(d["valid"] and d["name"] == c["name"] for d in calls[i + 1 :])
    bad = [c for c in calls if c["error"] and not c["expected_error"]]
    reason = bad[0]["error"].split(":", 1)[0] if bad else None
    return calls, reason


def check_messages(messages: list[dict]) -> None:
    """Structural checks every normalized conversation must pass (the normalized conversation of ``contracts.tables.TRAJECTORIES``)."""
    if not any(m.get("role") == "user" for m in messages):
        raise RowError("no_user_turn", "")
    if not any(m.get("role") == "assistant" for m in messages):
        raise RowError("no_assistant_turn", "")
    ids = {c["id"] for m in messages for c in m.get("tool_calls") or []}
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant", "tool"):
            raise RowError("bad_role", str(m.get("role")))
        if not isinstance(m.get("content"), str):
            raise RowError("bad_content", f"{m.get('role')}: {type(m.get('content')).__name__}")
        if m["role"] == "tool" and (
            not isinstance(m.get("tool_call_id"), str) or m["tool_call_id"] not in ids
        ):
            raise RowError("orphan_tool_result", str(m.get("tool_call_id"))[:80])


def build_row(
    parsed: Parsed, *, source: str, license: str | None, row_key: str, generator: str, created_at: dt.datetime
) -> dict:
    """The TRAJECTORIES row (plus ``source_uri``) of a parsed conversation; ``row_key`` is its
    stable lineage (``<file or URL>#<row index>``) and seeds the trajectory id."""
    check_messages(parsed.messages)
    calls, reason = validate_calls(parsed.messages, parsed.tools)
    return {
        "trajectory_id": sha256_text(f"{source}|{row_key}")[:20],
        "source": source,
        "pattern": infer_pattern(parsed.messages, parsed.tools),
        "api_ids": [],
        "providers": [],
        "tools": json.dumps(parsed.tools, ensure_ascii=False),
        "messages": json.dumps(parsed.messages, ensure_ascii=False),
        "calls": json.dumps(calls, ensure_ascii=False),
        "n_calls": len(calls),
        "n_calls_valid": sum(1 for c in calls if c["valid"]),
        "is_valid": reason is None,
        "invalid_reason": reason,
        "license": license or "unknown",
        "generator": generator,
        "created_at": created_at,
        "source_uri": row_key,
    }


def call_id(row_key: str, i: int) -> str:
    """A deterministic call id for datasets that do not carry one."""
    return "call_" + sha256_text(f"{row_key}|{i}")[:10]
