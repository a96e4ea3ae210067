"""Reference (oracle) answers: the decoded calls a perfect model would give for a BFCL item.

Built from the possible answer by taking the first allowed value of each parameter (a parameter
whose first allowed value is the optional marker ``""`` is left out). For Java and JavaScript items
the values are written back as literals in that language, since that is what the checker expects.
Uses: checker self-tests (every reference answer must be valid), the parity benchmark, and a sanity
row ("oracle accuracy") for ``hephaestus bfcl score``. :func:`contracts.chat.format_tool_calls`
renders them as a model's reply.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.bfcl import category as bfcl_category


def reference_calls(category: str, functions: list[dict], ground_truth: list[dict] | None) -> list[dict]:
    """Decoded calls (``[{name: {arg: value}}]``) that answer the item correctly; ``[]`` for relevance items."""
    row = bfcl_category(category)
    if row.kind == "irrelevance":
        return []
    if not ground_truth:
        # live_relevance has no answer: any call is right, so call the first function bare.
        return [{functions[0]["name"]: {}}] if row.kind == "relevance" and functions else []
    language = row.language
    docs = {doc.get("name"): doc for doc in functions}
    calls = []
    for answer in ground_truth:
        name, allowed_by_param = next(iter(answer.items()))
        properties = (docs.get(name, {}).get("parameters") or {}).get("properties", {})
        args = {}
        for param, allowed in allowed_by_param.items():
            if not allowed or allowed[0] == "":
                continue
            value = _pick(allowed[0])
            spec = properties.get(param, {})
            if language == "java":
                value = java_literal_of(value, spec)
            elif language == "javascript":
                value = js_literal_of(value, spec)
            args[param] = value
        calls.append({name: args})
    return calls


def _pick(value: Any) -> Any:
    """Dict answers nest lists of allowed values per key: pick the first of each, drop optional keys."""
    if isinstance(value, dict):
        picked = {}
        for key, allowed in value.items():
            if isinstance(allowed, list):
                if not allowed or allowed[0] == "":
                    continue
                allowed = allowed[0]
            picked[key] = _pick(allowed)
        return picked
    if isinstance(value, list):
        return [_pick(item) if isinstance(item, dict) else item for item in value]
    return value


def _java_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _java_element_of(value: Any, item_type: str | None, quote_strings: bool) -> str:
    if item_type is None:
        return _java_scalar(value)
    if isinstance(value, str):
        return json.dumps(value) if quote_strings else value
    return java_literal_of(value, {"type": item_type})


def java_literal_of(value: Any, spec: dict) -> str:
    """Write ``value`` as the Java literal the checker converts back to it."""
    kind = spec.get("type")
    item_type = (spec.get("items") or {}).get("type")
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "long" and type(value) is int:
        return f"{value}L"
    if kind == "float" and isinstance(value, (int, float)):
        return f"{float(value)}f"
    if kind == "Array" and isinstance(value, list):
        # Array elements are converted by their declared type, and a String element keeps any
        # quotes there, so strings are written bare.
        body = ", ".join(_java_element_of(v, item_type, quote_strings=False) for v in value)
        return f"new {item_type or 'Object'}[]{{{body}}}"
    if kind == "ArrayList" and isinstance(value, list):
        # ArrayList String/char elements lose their first and last character (the quotes).
        body = ", ".join(
            _java_element_of(v, item_type, quote_strings=item_type in ("String", "char")) for v in value
        )
        return f"new ArrayList<>(Arrays.asList({body}))"
    if kind == "HashMap" and isinstance(value, dict):
        puts = " ".join(f"put({json.dumps(str(k))}, {_java_scalar(v)});" for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return value if isinstance(value, str) else _java_scalar(value)


def _js_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def js_literal_of(value: Any, spec: dict) -> str:
    """Write ``value`` as the JavaScript literal the checker converts back to it."""
    kind = spec.get("type")
    if kind == "Boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "Bigint" and type(value) is int:
        return f"{value}n"
    if kind == "array" and isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):
            return "[" + ", ".join("[" + ", ".join(_js_scalar(x) for x in row) + "]" for row in value) + "]"
        return "[" + ", ".join(_js_scalar(v) for v in value) + "]"
    if kind == "dict" and isinstance(value, dict):
        entries = []
        for key, item in value.items():
            if isinstance(item, list):
                text = "[" + ", ".join(_js_scalar(v) for v in item) + "]"
            elif isinstance(item, str):
                text = f"'{item}'"
            else:
                text = _js_scalar(item)
            entries.append(f"{key}: {text}")
        return "{" + ", ".join(entries) + "}"
    return value if isinstance(value, str) else _js_scalar(value)
