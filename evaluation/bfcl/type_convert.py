"""Java / JavaScript literal conversion for BFCL's simple_java and simple_javascript categories.

In those categories every argument a model gives is a *string* holding a Java or JavaScript literal
(``"new ArrayList<>(Arrays.asList(1, 2))"``, ``"3.5f"``, ``"{key: 'v'}"``); the checker turns the string
into a Python value and then compares it like a Python argument. The official checker's converters
are lenient in a specific way: a literal that does not match the expected form stays a plain string
(it is not an error), and a few types (``Set``, ``Hashtable``, ``Queue``, ``Stack``) cannot be converted
at all. This module reproduces those rules (written from the rules, not the code) so our verdicts
agree with the official ones; :class:`UnsupportedType` marks the cases where the official converter
raises.
"""

from __future__ import annotations

import re
from typing import Any

#: Java type name in a BFCL function document -> Python type of the converted value.
JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "char": str,
    "String": str,
    "any": str,
    "Array": list,
    "ArrayList": list,
    "Queue": list,
    "Stack": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
}

#: JavaScript type name in a BFCL function document -> Python type of the converted value.
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")


class UnsupportedType(ValueError):
    """The official converter cannot convert this type (it raises there); the item is scored wrong."""


def _strip_suffix(text: str) -> str:
    return text[:-1] if text[-1:] in "fFlLn" else text


# --------------------------------------------------------------------------------------- Java
def java_value(value: str, type_name: str, nested_type: str | None = None) -> Any:
    """Convert one Java literal string to the Python value the checker compares."""
    if type_name not in JAVA_TYPES:
        raise UnsupportedType(f"unsupported Java type {type_name!r}")
    if type_name in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else value
    if type_name == "long":
        return int(_strip_suffix(value.rstrip("\n"))) if _JAVA_LONG.match(value) else value
    if type_name == "float":
        return float(_strip_suffix(value.rstrip("\n"))) if _JAVA_FLOAT.match(value) else value
    if type_name == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else value
    if type_name == "boolean":
        return value == "true" if value in ("true", "false") else value
    if type_name in ("char", "String", "any"):
        # The official char pattern can never match, so a char literal always stays as written.
        return value
    if type_name == "Array":
        return _java_array(value, nested_type)
    if type_name == "ArrayList":
        return _java_arraylist(value, nested_type)
    if type_name == "HashMap":
        return _java_hashmap(value)
    raise UnsupportedType(f"Java type {type_name!r} has no conversion in BFCL's checker")


def java_literal(text: str) -> Any:
    """Read an untyped Java literal: boolean, quoted string, long, float, int, double, else the text."""
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(_strip_suffix(text))
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _java_element(text: str, nested_type: str | None) -> Any:
    if nested_type in ("char", "String"):
        return text[1:-1]  # drop the quotes around each element
    return java_value(text, nested_type) if nested_type else java_literal(text)


def _java_array(value: str, nested_type: str | None) -> Any:
    match = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", value)
    if not match:
        return value
    parts = [part.strip() for part in match.group(1).split(",") if part.strip()]
    if nested_type:
        return [java_value(part, nested_type) for part in parts]
    return [java_literal(part) for part in parts]


def _java_arraylist(value: str, nested_type: str | None) -> Any:
    as_list = re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", value)
    if as_list:
        return [_java_element(part.strip(), nested_type) for part in as_list.group(1).split(",")]
    double_brace = re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", value, re.DOTALL)
    if double_brace:
        adds = re.findall(r"add\((.+?)\)", double_brace.group(1))
        return [_java_element(add.strip(), nested_type) for add in adds]
    if re.search(r"new\s+ArrayList<\w*>\(\)", value):
        return []
    return value


def _java_hashmap(value: str) -> Any:
    match = re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", value, re.DOTALL)
    if match:
        body = match.group(1)
        if not body.strip():
            return {}
        return {key: java_literal(raw.strip()) for key, raw in re.findall(r"put\(\"(.*?)\",\s*(.*?)\)", body)}
    if re.search(r"new\s+HashMap<.*?>\s*\(\)", value):
        return {}
    return value


# ---------------------------------------------------------------------------------- JavaScript
def _quoted(text: str) -> bool:
    return len(text) >= 1 and (
        (text.startswith('"') and text.endswith('"')) or (text.startswith("'") and text.endswith("'"))
    )


def js_value(value: str, type_name: str, nested_type: str | None = None) -> Any:
    """Convert one JavaScript literal string to the Python value the checker compares."""
    if type_name not in JS_TYPES:
        raise UnsupportedType(f"unsupported JavaScript type {type_name!r}")
    if type_name == "String":
        return value[1:-1] if _quoted(value) else value
    if type_name == "integer":
        return int(value) if _INT.match(value) else value
    if type_name == "float":
        return float(value) if _JS_FLOAT.match(value) else value
    if type_name == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else value
    if type_name == "Boolean":
        return value == "true" if value in ("true", "false") else value
    if type_name == "dict":
        return _js_dict(value.strip())
    if type_name == "array":
        return _js_array(value.strip(), nested_type)
    return value  # "any": kept as written


def js_literal(text: str) -> Any:
    """Read an untyped JavaScript literal: boolean, quoted string, int, float, else the text."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if _quoted(text):
        return text[1:-1]
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


_JS_2D = re.compile(r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)")
_JS_1D = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")


def _js_array(code: str, nested_type: str | None) -> Any:
    try:
        two_d = _JS_2D.match(code)
        if two_d:
            rows = []
            for index, inner in enumerate(re.findall(r"\[(.*?)\]", two_d.group(0))):
                inner = inner.strip()
                if index == 0 and inner.startswith("["):
                    inner = inner[1:]
                rows.append([js_literal(part.strip()) for part in inner.split(",")])
            return rows
        one_d = _JS_1D.match(code)
        if not one_d:
            return code
        body = one_d.group(1) if one_d.group(1) is not None else one_d.group(2)
        body = (body or "").strip()
        parts = body.split(",") if body else []
        if not nested_type:
            return [js_literal(part.strip()) for part in parts]
        # A quoted element is read as a string literal first (matters only for nested collections).
        return [
            js_value(part.strip(), nested_type, "String" if part.strip().startswith(("'", '"')) else None)
            for part in parts
        ]
    except ValueError:
        # An element of an unconvertible type: the official converter gives the raw text back.
        return code


def _js_dict(code: str) -> Any:
    if code == "{}":
        return {}
    match = re.match(r"\{(.*?)\}", code)
    if not match:
        return code
    result: dict[str, Any] = {}
    for key, raw in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", match.group(1)):
        key, raw = key.strip().strip("'\""), raw.strip()
        if raw.startswith("[") and raw.endswith("]"):
            result[key] = _js_array(raw, None)
        elif raw.startswith("{") and raw.endswith("}"):
            result[key] = _js_dict(raw)
        else:
            result[key] = js_literal(raw.strip("'\""))
    return result
