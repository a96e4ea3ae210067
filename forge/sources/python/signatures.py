"""Python signatures and annotations -> JSON Schema: the one annotation map of the API sources.

Used inside the introspection child process (live objects, ``annotation_schema``) and on
signatures known only as text — documentation pages (``forge.sources.webdocs``) and ``hubconf.py``
sources parsed without running them (``forge.sources.hub.cards``) — through
``annotation_text_schema`` and ``text_param_schema``.

Mapping of annotations: ``int`` -> integer, ``float``/``complex`` -> number, ``str``/``bytes`` ->
string, ``bool`` -> boolean, ``list``/``tuple``/``set``/``frozenset`` -> array, ``dict`` -> object,
``None`` -> null. For a live type: ``Optional[X]`` -> X's schema with ``"nullable": true``,
``Union`` -> ``anyOf``, ``Literal`` -> ``enum``, ``Enum`` subclasses -> ``enum`` of values, and
``items`` / ``additionalProperties`` for parametrized containers. For a text annotation (or one
Python could not evaluate): each top-level alternative by its base name (``List[int]`` -> array),
``X | None`` and ``Optional[X]`` -> ``["x", "null"]``. Anything else carries only a
``"description"`` naming the type. ``*args`` / ``**kwargs`` are documented (array / object) but
never required; ``self`` / ``cls`` are left out.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

_SIMPLE: dict[Any, str] = {
    int: "integer",
    float: "number",
    complex: "number",
    str: "string",
    bytes: "string",
    bool: "boolean",
    list: "array",
    tuple: "array",
    set: "array",
    frozenset: "array",
    dict: "object",
    type(None): "null",
}
#: Base names of text annotations (the ``typing`` aliases match case-insensitively: ``List``).
_SIMPLE_NAMES = {tp.__name__: name for tp, name in _SIMPLE.items() if tp is not type(None)} | {"None": "null"}
#: Python literal types of defaults, for a text parameter without an annotation.
_LITERAL_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", bytes: "string",
                  list: "array", tuple: "array", dict: "object", set: "array"}  # fmt: skip


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"
    return str(tp).replace("typing.", "")


def annotation_schema(tp: Any, depth: int = 0) -> dict[str, Any]:
    """JSON Schema of a type annotation ({} when there is none); see the module docstring."""
    if tp is inspect.Parameter.empty or tp is typing.Any or depth > 6:
        return {}
    if isinstance(tp, str):  # an annotation that could not be evaluated
        return annotation_text_schema(tp)
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1 and len(args) == 2:
            return annotation_schema(non_null[0], depth + 1) | {"nullable": True}
        return {"anyOf": [annotation_schema(a, depth + 1) for a in args]}
    if origin is typing.Literal:
        return {"enum": [a if isinstance(a, str | int | float | bool) else str(a) for a in args]}
    if origin in (list, set, frozenset, tuple) or (
        isinstance(origin, type) and origin.__name__ in ("Sequence", "Iterable", "MutableSequence")
    ):
        items = [a for a in args if a is not Ellipsis]
        schema: dict[str, Any] = {"type": "array"}
        if len(items) == 1 or (origin is tuple and len(set(map(str, items))) == 1 and items):
            schema["items"] = annotation_schema(items[0], depth + 1)
        elif items and origin is tuple:
            schema["prefixItems"] = [annotation_schema(a, depth + 1) for a in items]
        return schema
    if origin is dict or (isinstance(origin, type) and origin.__name__ in ("Mapping", "MutableMapping")):
        schema = {"type": "object"}
        if len(args) == 2 and annotation_schema(args[1], depth + 1):
            schema["additionalProperties"] = annotation_schema(args[1], depth + 1)
        return schema
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value if isinstance(m.value, str | int | float | bool) else m.name for m in tp]}
    if isinstance(tp, type) and issubclass(tp, bool | int | float | str):
        return annotation_schema(next(b for b in tp.__mro__ if b in _SIMPLE), depth + 1)
    return {"description": f"type: {_type_name(tp)}"}


def _alternatives(text: str) -> list[str]:
    """Top-level ``|`` alternatives of a text annotation; ``Optional[X]`` is ``X | None``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    out: list[str] = []
    for part in (p.strip() for p in parts):
        head, bracket, _ = part.partition("[")
        if bracket and head.rsplit(".", 1)[-1] == "Optional" and part.endswith("]"):
            out += [*_alternatives(part[len(head) + 1 : -1]), "None"]
        else:
            out.append(part)
    return out


def annotation_text_schema(text: str) -> dict[str, Any]:
    """JSON Schema of an annotation known only as text (see the module docstring): one type, a
    list of types for alternatives (``int | None`` -> ``["integer", "null"]``), else a description."""
    types: list[str] = []
    for alt in _alternatives(text):
        base = alt.split("[", 1)[0].strip().rsplit(".", 1)[-1]
        t = _SIMPLE_NAMES.get(base) or _SIMPLE_NAMES.get(base.lower())
        if t is None:
            return {"description": f"type: {text}"}
        if t not in types:
            types.append(t)
    return {"type": types[0] if len(types) == 1 else types}


def text_param_schema(param: dict[str, Any], doc: str | None = None) -> dict[str, Any]:
    """JSON Schema of one parameter known only as text: ``name``, ``kind`` (``var_positional``,
    ``var_keyword`` or another), ``annotation`` and ``default`` (source text or None), as
    ``forge.crawler.apidocs.parse_param`` reads them from a page. The type comes from the
    annotation, else from the default's literal type; a default that is not a literal is named in
    the description. ``doc`` (the parameter's documentation) leads the description."""
    if param["kind"] == "var_positional":
        schema: dict[str, Any] = {
            "type": "array",
            "description": f"extra positional arguments (*{param['name']})",
        }
    elif param["kind"] == "var_keyword":
        schema = {"type": "object", "description": f"extra keyword arguments (**{param['name']})"}
    elif param.get("annotation"):
        schema = annotation_text_schema(param["annotation"])
    else:
        schema = {}
    default = param.get("default")
    if default is not None:
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            schema["description"] = (schema.get("description", "") + f" (default: {default})").strip()
        else:
            if isinstance(value, (bytes, set, frozenset, complex)):
                value = repr(value)
            schema["default"] = value
            if "type" not in schema and type(value) in _LITERAL_TYPES:
                schema["type"] = _LITERAL_TYPES[type(value)]
    if doc:
        schema["description"] = (doc + " " + schema.get("description", "")).strip()
    return schema


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


#: CPython's default repr of an object carries its memory address (``<function f at 0x7f...>``)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def default_text(value: Any, limit: int = 80) -> str:
    """A non-JSON default's text for a description, the same in every process: the repr without the
    memory address (``<function IS_CHARACTER_JUNK>``), a set's members in sorted order (their order
    follows string hashing, which differs per process); at most ``limit`` characters."""
    if isinstance(value, set | frozenset) and value:
        text = f"{type(value).__name__}({{{', '.join(sorted(map(repr, value)))}}})"
    else:
        text = repr(value)
    return _ADDRESS.sub("", text)[:limit]


def describe_callable(obj: Any, qualname: str, kind: str) -> dict[str, Any]:
    """JSON-ready facts about one callable: params (name, schema, required), returns, doc.

    Raises ValueError/TypeError when Python cannot give a signature (some C builtins).
    """
    target = obj
    try:
        sig = inspect.signature(target, eval_str=True)
    except (NameError, SyntaxError, TypeError, AttributeError):
        sig = inspect.signature(target)  # annotations stay strings; annotation_schema reads names
    params: list[dict[str, Any]] = []
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name in ("self", "cls") and kind in ("method", "class"):
            continue
        if p.name.startswith("_") and p.default is not p.empty:
            continue  # private knobs (``_w=WHITESPACE.match``) are not part of the API
        schema = annotation_schema(p.annotation)
        if p.kind is p.VAR_POSITIONAL:
            schema = {"type": "array", "description": f"extra positional arguments (*{p.name})"}
            if p.annotation is not p.empty:
                schema["items"] = annotation_schema(p.annotation)
        elif p.kind is p.VAR_KEYWORD:
            schema = {"type": "object", "description": f"extra keyword arguments (**{p.name})"}
        elif p.default is not p.empty:
            if _jsonable(p.default):
                schema["default"] = p.default
            else:
                schema["description"] = f"(default: {default_text(p.default)})"
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        params.append({"name": p.name, "schema": schema, "required": required})
    returns = {} if kind == "class" else annotation_schema(sig.return_annotation)
    return {"qualname": qualname, "kind": kind, "params": params, "returns": returns,
            "doc": inspect.getdoc(obj) or ""}  # fmt: skip


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if isinstance(names, list | tuple):
        return sorted(n for n in names if isinstance(n, str) and not n.startswith("_"))
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
    )


def public_members(module: Any) -> Iterator[tuple[str, str, Any]]:
    """``(qualified name, kind, object)`` of public functions, classes and their public methods.

    Public = no leading underscore and listed in ``__all__`` when the module defines one (else
    defined in this module, so re-exported imports are not described twice). Exception classes
    come out with kind ``"exception"`` so the caller can count them as skipped (they are not tools).
    """
    for name in _public_names(module):
        obj = getattr(module, name, None)
        qual = f"{module.__name__}.{name}"
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            yield qual, "exception", obj
        elif inspect.isclass(obj):
            yield qual, "class", obj
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = getattr(obj, attr)
                if (
                    inspect.isfunction(member)
                    or inspect.ismethoddescriptor(member)
                    or inspect.ismethod(member)
                ):
                    yield f"{qual}.{attr}", "method", getattr(obj, attr)
        elif callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            yield qual, "function", obj
