"""A schema-validating mock executor for synthetic tool calls.

Every call in a synthesized trajectory goes through :class:`MockExecutor`: the function must
exist, the arguments must validate against its JSON Schema (``jsonschema``), and the answer is a
JSON body shaped by the operation's success response schema, or a 4xx error body that reads like a
real API's. Nothing is sent anywhere; responses are deterministic for (seed, function, arguments).

Validator choice: a schema's own ``$schema`` wins; otherwise Draft 7. Checking a schema against the
Draft 2020-12 metaschema costs ~6x more (its ``$dynamicRef`` chain) and API docs use nothing
beyond Draft 7, so Draft 7 keeps executor start-up cheap for thousands of operations.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from forge.synth.arguments import CannotSatisfy, generate_value

_TYPE_ALIASES = {"dict": "object", "float": "number", "tuple": "array", "int": "integer", "file": "string"}
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_MAX_OUTPUT_CHARS = 4000


@dataclass(frozen=True)
class ExecutionResult:
    """One call's outcome.

    ``ok``: the call succeeded (function found, arguments valid, response produced).
    ``validated``: the arguments were checked against a usable schema (False when the function is
    unknown or its schema is itself invalid, i.e. nothing could be checked).
    ``output``: the JSON body the tool returns (an error body when not ok).
    ``error``: a one-line reason when not ok, prefixed by its kind (``arguments_invalid: ...``).
    """

    ok: bool
    output: str
    error: str | None
    validated: bool

    @property
    def error_kind(self) -> str | None:
        return self.error.split(":", 1)[0] if self.error else None


def normalize_schema(schema: Any) -> Any:
    """JSON Schema from the dialects API docs use: OpenAPI 3.0 ``nullable`` and boolean
    ``exclusiveMinimum``/``exclusiveMaximum``, BFCL type names (``dict``, ``float``, ``tuple``,
    ``any``) and Draft-3 ``"required": true`` on a property. Returns a new schema."""
    if isinstance(schema, list):
        return [normalize_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, str):
        if t == "any":
            out.pop("type")
        else:
            out["type"] = _TYPE_ALIASES.get(t, t)
    elif isinstance(t, list):
        out["type"] = [_TYPE_ALIASES.get(x, x) if isinstance(x, str) else x for x in t]
    if out.pop("nullable", False) is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for ex, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(ex), bool):
            flag = out.pop(ex)
            if flag and isinstance(out.get(bound), int | float):
                out[ex] = out.pop(bound)
    if isinstance(out.get("properties"), dict):
        props, required = {}, list(out.get("required") or []) if isinstance(out.get("required"), list) else []
        for name, sub in out["properties"].items():
            if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
                sub = dict(sub)
                if sub.pop("required") and name not in required:
                    required.append(name)
            props[name] = normalize_schema(sub)
        out["properties"] = props
        if required:
            out["required"] = required
    for key in _SCHEMA_KEYS:
        if key in out:
            out[key] = normalize_schema(out[key])
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = normalize_schema(out[key])
    for key in ("$defs", "definitions", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {k: normalize_schema(v) for k, v in out[key].items()}
    return out


_SCHEMA_OK: dict[tuple[str, str], str | None] = {}


def check_schema_cached(cls: Any, schema: dict) -> None:
    """``cls.check_schema`` with the metaschema check of each property memoized by its JSON text.

    Property schemas recur across operations (auth headers, paging, ids), and the metaschema
    applies to each property independently, so checking them one by one and caching gives the same
    verdict for a third of the cost. Raises ``jsonschema.SchemaError`` like ``check_schema``."""
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            key = (cls.__name__, json.dumps(sub, sort_keys=True, default=str))
            if key not in _SCHEMA_OK:
                if len(_SCHEMA_OK) > 200_000:
                    _SCHEMA_OK.clear()
                try:
                    cls.check_schema(sub)
                    _SCHEMA_OK[key] = None
                except jsonschema.SchemaError as exc:
                    _SCHEMA_OK[key] = (
                        f"{exc.message[:200]} (at properties/{name}/{'/'.join(map(str, exc.absolute_path))})"
                    )
            if _SCHEMA_OK[key] is not None:
                raise jsonschema.SchemaError(_SCHEMA_OK[key])
        cls.check_schema({**schema, "properties": {}})
    else:
        cls.check_schema(schema)


def declared_properties(schema: dict) -> set[str] | None:
    """Names an object schema declares (``properties`` and ``required``, also through
    allOf/anyOf/oneOf); None
    when it declares none, i.e. when any name is acceptable."""
    names: set[str] = set()
    found = False
    for part in [schema, *(p for k in ("allOf", "anyOf", "oneOf") for p in schema.get(k) or [])]:
        if isinstance(part, dict) and isinstance(part.get("properties"), dict):
            found = True
            names.update(part["properties"])
            names.update(r for r in part.get("required") or [] if isinstance(r, str))
    return names if found else None


def error_body(code: int, message: str, **extra: Any) -> str:
    """The JSON error body a REST API would send: ``{"error": {"code", "message", ...}}``."""
    return json.dumps({"error": {"code": code, "message": message, **extra}}, ensure_ascii=False)


#: Markers the OpenAPI ingest leaves where a ``$ref`` could not be followed (forge.sources.openapi.refs).
UNRESOLVED_MARKERS = ("x-unresolved-ref", "x-external-ref")


def unresolved_part(schema: Any) -> str | None:
    """The first ref a schema could not resolve (a dangling or external ``$ref``), or None.

    A call is never counted as validated against such a schema: the part the spec left undefined
    would accept anything. The walk is iterative (schemas can be deep) and stops at the first hit.
    """
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for marker in UNRESOLVED_MARKERS:
                if marker in node:
                    return str(node[marker])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def describe_validation_error(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field path, human message) for the most relevant jsonschema error."""
    path = ".".join(str(p) for p in err.absolute_path)
    where = f"'{path}'" if path else "arguments"
    v = err.validator
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        full = f"{path}.{missing}" if path else missing
        return full, f"missing required parameter '{full}'"
    if v == "type":
        t = err.validator_value
        want = " or ".join(t) if isinstance(t, list) else t
        return path, f"{where} must be {want}"
    if v == "enum":
        return path, f"{where} must be one of {json.dumps(err.validator_value)[:200]}"
    if v == "additionalProperties":
        return path, err.message.replace("Additional properties are not allowed", "unknown parameter")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength"):
        return path, f"{where} violates {v} {err.validator_value}"
    if v == "format":
        return path, f"{where} must be a valid {err.validator_value}"
    if v == "pattern":
        return path, f"{where} must match pattern {err.validator_value}"
    return path, f"{where}: {err.message[:200]}"


class MockExecutor:
    """Validates calls against the operations' schemas and answers with mock bodies.

    ``api_rows``: rows of contracts.tables.API_OPERATIONS. ``strict_unknown``: reject argument names
    the schema does not declare (as a Python function or a strict REST API would). ``counts``
    tallies outcomes by kind (ok, unknown_function, invalid_schema, arguments_invalid,
    duplicate_name) so a caller can report them.
    """

    def __init__(self, api_rows: Iterable[dict], *, seed: int = 0, strict_unknown: bool = True) -> None:
        self.seed, self.strict_unknown = seed, strict_unknown
        self.counts: Counter = Counter()
        self._rows: dict[str, dict] = {}
        self._compiled: dict[str, tuple[Any, str | None]] = {}
        for row in api_rows:
            name = row.get("function_name") or ""
            if name in self._rows:
                self.counts["duplicate_name"] += 1
                continue
            self._rows[name] = row

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    def validator(self, name: str) -> tuple[Any, str | None]:
        """(validator, None) for a usable schema, or (None, reason) when the schema is broken."""
        if name not in self._compiled:
            self._compiled[name] = self._compile(self._rows[name])
        return self._compiled[name]

    def _compile(self, row: dict) -> tuple[Any, str | None]:
        try:
            raw = row.get("parameters") or "{}"
            schema = normalize_schema(json.loads(raw) if isinstance(raw, str) else raw)
            if not isinstance(schema, dict):
                return None, "parameters is not a JSON object"
            unresolved = unresolved_part(schema)
            if unresolved is not None:  # validating against it would accept what the spec left undefined
                return None, f"schema holds an unresolved $ref {unresolved[:160]}"
            cls = validator_for(schema, default=jsonschema.Draft7Validator)
            check_schema_cached(cls, schema)
            return cls(schema, format_checker=cls.FORMAT_CHECKER), None
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            return None, exc.message[:200] + (f" (at {where})" if where else "")
        except (ValueError, TypeError, RecursionError) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"

    def check(self, name: str, arguments: Any) -> str | None:
        """Why these arguments would be rejected, or None when a call would succeed (not counted)."""
        if name not in self._rows:
            return f"function '{name}' not found"
        validator, broken = self.validator(name)
        if validator is None:
            return f"invalid schema: {broken}"
        problem = self._check(validator, arguments)
        return None if problem is None else problem[1]

    def call(self, name: str, arguments: Any) -> ExecutionResult:
        """Execute one call: validate, then answer with a success or an error body."""
        if name not in self._rows:
            self.counts["unknown_function"] += 1
            return ExecutionResult(
                False, error_body(404, f"function '{name}' not found"), f"unknown_function: {name}", False
            )
        validator, broken = self.validator(name)
        if validator is None:
            self.counts["invalid_schema"] += 1
            return ExecutionResult(
                False,
                error_body(500, "the operation's parameter schema is invalid"),
                f"invalid_schema: {broken}",
                False,
            )
        problem = self._check(validator, arguments)
        if problem is not None:
            self.counts["arguments_invalid"] += 1
            field, message = problem
            return ExecutionResult(
                False, error_body(400, message, field=field), f"arguments_invalid: {message}", True
            )
        self.counts["ok"] += 1
        return ExecutionResult(True, self._respond(self._rows[name], arguments), None, True)

    def _check(self, validator: Any, arguments: Any) -> tuple[str, str] | None:
        if not isinstance(arguments, dict):
            return "", "arguments must be a JSON object"
        if self.strict_unknown:
            declared = declared_properties(validator.schema)
            if declared is not None and validator.schema.get("additionalProperties") is not True:
                unknown = sorted(k for k in arguments if k not in declared)
                if unknown:
                    return unknown[0], f"unknown parameter '{unknown[0]}'"
        try:
            err = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        except Exception as exc:  # a schema that passed check_schema but breaks at use (bad regex...)
            return "", f"schema could not be applied: {type(exc).__name__}"
        return None if err is None else describe_validation_error(err)

    def _respond(self, row: dict, arguments: dict) -> str:
        key = json.dumps([self.seed, row.get("function_name"), arguments], sort_keys=True, default=str)
        rng = random.Random(key)
        code, schema = success_response(row)
        body: Any = None
        if schema:
            try:
                body = generate_value(
                    normalize_schema(schema), rng, include_optional=0.75, max_depth=3, max_items=2
                )
            except CannotSatisfy:
                body = None
        if isinstance(body, dict):
            for k, v in arguments.items():  # echo what was asked for: {"city": "Paris"} -> "city": "Paris"
                if k in body and type(body[k]) is type(v):
                    body[k] = v
        if body is None or body == {} or body == []:
            body = {
                "status": "ok",
                "code": int(code) if code.isdigit() else 200,
                "operation": row.get("function_name"),
            }
            if arguments:
                body["request"] = arguments
        text = json.dumps(body, ensure_ascii=False, default=str)
        if len(text) > _MAX_OUTPUT_CHARS:  # keep observations readable: drop to a summary body
            text = json.dumps({"status": "ok", "operation": row.get("function_name"), "truncated": True})
        return text


def success_response(row: dict) -> tuple[str, dict | None]:
    """(status code, JSON Schema of the body) of the operation's success response, if documented.

    ``responses`` is ``{status: {description, schema}}`` (HTTP) or ``{"return": {...}}`` (Python)."""
    try:
        raw = row.get("responses")
        responses = raw if isinstance(raw, dict) else json.loads(raw or "{}")
    except (TypeError, ValueError):
        return "200", None
    if not isinstance(responses, dict):
        return "200", None
    for code in sorted(str(c) for c in responses):
        if code.startswith("2"):
            return code, _schema_of(responses[code])
    for code in ("default", "return"):
        if code in responses:
            return ("200" if code == "default" else "return"), _schema_of(responses[code])
    return "200", None


def _schema_of(resp: Any) -> dict | None:
    if not isinstance(resp, dict):
        return None
    schema = resp.get("schema", resp if "type" in resp or "properties" in resp else None)
    return schema if isinstance(schema, dict) and schema else None
