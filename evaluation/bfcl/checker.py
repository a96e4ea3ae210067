"""BFCL's AST checker rules, reimplemented: is a decoded model answer a correct function call?

Grain: one benchmark item. Input is the item's function documents, the decoded model output (a list
of ``{func_name: {arg: value}}``, see :mod:`evaluation.bfcl.parse`) and BFCL's possible answer (a list of
``{func_name: {param: [allowed values...]}}``). The rules follow the official checker of
``bfcl-eval==2026.3.23`` (``eval_checker/ast_eval/ast_checker.py``), so a verdict here should equal the
official one; ``bench/bfcl_parity.py`` measures that. Error types use the official names.

Rules, in the order they are applied:

* **Function name**: compared verbatim. BFCL rewrites ``.`` to ``_`` in the expected name only for
  models registered with ``underscore_to_dot`` (APIs that forbid dots in tool names); our models see
  and emit the dotted names, which is the official behaviour for every other model.
* **Parameters**: every ``required`` parameter must be present; every given parameter must be both
  documented and listed in the possible answer; a parameter listed in the answer but not given is an
  error unless ``""`` is among its allowed values (that marks it optional).
* **Types**: ``float`` accepts a Python int (promoted); ``tuple`` accepts a tuple or list; arrays and
  tuples check their elements one level deep. A value whose type matches the type of the allowed
  values instead of the documented type is a "variable" and compared as-is.
* **Values**: strings are compared after BFCL's normalisation (lower-case, spaces and ``,./-_*^``
  removed, ``'`` read as ``"``); lists element-wise with the same normalisation for string elements;
  dicts key by key; lists of dicts position by position; everything else by ``in``.
* **Java / JavaScript**: every argument must be a string holding a literal, converted with
  :mod:`evaluation.bfcl.type_convert` before the checks above.
* **Categories**: dispatch is on the category's kind in :data:`contracts.bfcl.CATEGORIES`: the
  ``parallel`` and ``parallel_multiple`` kinds match calls to answers in any order; ``multiple``
  checks the one call against the answer's function; ``simple`` needs exactly one call. The
  ``irrelevance`` kind is correct iff no call was decoded, ``relevance`` iff at least one was.

Extension (no effect on BFCL data): JSON Schema type names (``number``, ``object``, ``list``, ``bool``)
are accepted for our own unseen-API items, and a parameter without a type skips the type check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.bfcl import ORDER_FREE_KINDS, RELEVANCE_KINDS
from contracts.bfcl import category as bfcl_category
from evaluation.bfcl.parse import ParseResult
from evaluation.bfcl.type_convert import JAVA_TYPES, JS_TYPES, UnsupportedType, java_value, js_value

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
    # JSON Schema spellings (our unseen-API items); BFCL's data never uses them.
    "number": float,
    "object": dict,
    "list": list,
    "bool": bool,
}
_NESTED_PYTHON = ("array", "tuple", "list")
_NESTED_CONVERTED = ("Array", "ArrayList", "array")
_PUNCTUATION = str.maketrans("", "", " ,./-_*^")


@dataclass(frozen=True)
class Verdict:
    """The checker's answer for one item: ``error_type`` is empty when valid."""

    valid: bool
    error_type: str = ""
    errors: list[str] = field(default_factory=list)


_OK = Verdict(True)


def _fail(error_type: str, message: str) -> Verdict:
    return Verdict(False, error_type, [message])


def language_of(category: str) -> str:
    """``python``, ``java`` or ``javascript``: how the category's arguments are written."""
    return bfcl_category(category).language


def normalize_string(text: str) -> str:
    """BFCL's string normalisation: so "April 1, 2024" and "april 1 2024" compare equal."""
    return text.translate(_PUNCTUATION).lower().replace("'", '"')


def _norm(value: Any) -> Any:
    return normalize_string(value) if type(value) is str else value


def _as_seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, str)) else [value]


def _answer_type(allowed: Sequence[Any]) -> type | None:
    """Type of the first allowed value that is not the optional marker ``""``."""
    for option in allowed:
        if option != "":
            return type(option)
    return None


# ------------------------------------------------------------------------------ type checking
def _type_check(
    param: str, value: Any, allowed: Any, wanted: type, nested: type | None
) -> tuple[Verdict, bool]:
    """Check ``value`` against the documented type; returns (verdict, is_variable)."""
    answer_type = _answer_type(_as_seq(allowed))
    is_variable = answer_type is not None and answer_type is not wanted
    nested_failed = False
    if type(value) is wanted:
        if nested is None:
            return _OK, is_variable
        for option in _as_seq(allowed):
            if type(option) is not list:
                return _OK, is_variable  # an allowed scalar (e.g. "") does not constrain elements
            if all(_type_check(param, item, option, nested, None)[0].valid for item in value):
                return _OK, is_variable
        nested_failed = True
    if answer_type is not None and type(value) is answer_type:
        if nested_failed:
            return _fail(
                "type_error:nested",
                f"Nested type check failed for {param!r}: elements of {value!r} are not {nested.__name__}.",
            ), True
        return _OK, True
    return _fail(
        "type_error:simple",
        f"Incorrect type for parameter {param!r}. Expected {wanted.__name__}, got {type(value).__name__}: {value!r}.",
    ), False


# ----------------------------------------------------------------------------- value checking
def _string_check(param: str, value: str, allowed: Sequence[Any]) -> Verdict:
    if normalize_string(value) in [normalize_string(a) for a in allowed if type(a) is str]:
        return _OK
    return _fail("value_error:string", f"Invalid value for {param!r}: {value!r}. Expected one of {allowed}.")


def _list_check(param: str, value: list, allowed: Sequence[Any]) -> Verdict:
    normalized = [_norm(item) for item in value]
    options = [
        [_norm(item) for item in option] for option in allowed if isinstance(option, (list, tuple, str))
    ]
    if normalized in options:
        return _OK
    return _fail(
        "value_error:list/tuple", f"Invalid value for {param!r}: {value!r}. Expected one of {allowed}."
    )


def _dict_check(param: str, value: dict, allowed: Sequence[Any]) -> Verdict:
    verdict = _fail("dict_checker:unclear", f"No allowed value for {param!r} to compare with.")
    for option in allowed:
        if option == "":
            continue
        if not isinstance(option, dict):
            verdict = _fail("dict_checker:unclear", f"Allowed value {option!r} for {param!r} is not a dict.")
            continue
        error_type, errors = "", []
        for key, item in value.items():
            if key not in option:
                error_type, errors = "value_error:dict_key", [f"Unexpected dict key {key!r} in {param!r}."]
                break
            choices = [_norm(choice) for choice in _as_seq(option[key])]
            if _norm(item) not in choices:
                error_type = "value_error:dict_value"
                errors = [f"Invalid value for key {key!r} of {param!r}: {item!r}. Expected one of {choices}."]
                break
        for key, choices in option.items():
            if key not in value and "" not in _as_seq(choices):
                error_type = "value_error:dict_key"
                errors = [*errors, f"Missing dict key {key!r} in {param!r}."]
                break
        if not error_type:
            return _OK
        verdict = Verdict(False, error_type, errors)
    return verdict


def _list_of_dicts_check(param: str, value: list, allowed: Sequence[Any]) -> Verdict:
    verdict = _fail("list_dict_checker:unclear", f"No allowed value for {param!r} to compare with.")
    for option in allowed:
        option = _as_seq(option)
        if len(value) != len(option):
            verdict = _fail("value_error:list_dict_count", f"Wrong number of dicts in {param!r}.")
            continue
        for item, expected in zip(value, option, strict=True):
            if not isinstance(item, dict):
                verdict = _fail("value_error:dict_value", f"Element {item!r} of {param!r} is not a dict.")
                break
            verdict = _dict_check(param, item, [expected])
            if not verdict.valid:
                break
        else:
            return _OK
    return verdict


# ------------------------------------------------------------------------------- one call
def _convert(
    language: str, param: str, value: Any, spec: dict
) -> tuple[Any, type | None, type | None, Verdict]:
    """Resolve the documented type (and element type) and convert Java/JS literals.

    Returns (value, wanted type or None to skip type checks, nested type, verdict)."""
    type_name = spec.get("type")
    if isinstance(type_name, list):  # JSON Schema ["string", "null"]
        type_name = next((t for t in type_name if t != "null"), None)
    if type_name is None and language == "python":
        return value, None, None, _OK
    item_type = (spec.get("items") or {}).get("type")
    if language == "python":
        wanted = PYTHON_TYPES.get(type_name)
        if wanted is None:
            return (
                value,
                None,
                None,
                _fail("type_error:unsupported", f"Unsupported type {type_name!r} for {param!r}."),
            )
        nested = PYTHON_TYPES.get(item_type) if type_name in _NESTED_PYTHON and item_type else None
        return value, wanted, nested, _OK
    table, convert = (JAVA_TYPES, java_value) if language == "java" else (JS_TYPES, js_value)
    tag = "type_error:java" if language == "java" else "type_error:js"
    if type_name not in table:
        return value, None, None, _fail(f"{tag}_unsupported", f"Unsupported {language} type {type_name!r}.")
    if type(value) is not str:
        return (
            value,
            None,
            None,
            _fail(tag, f"{param!r} must be a {language} literal in a string, got {value!r}."),
        )
    nested = None
    try:
        if type_name in _NESTED_CONVERTED:
            if item_type not in table:
                raise UnsupportedType(f"unsupported element type {item_type!r}")
            nested = table[item_type]
            value = convert(value, type_name, item_type)
        else:
            value = convert(value, type_name)
    except UnsupportedType as exc:
        return value, None, None, _fail(f"{tag}_unsupported", f"{param!r}: {exc}.")
    return value, table[type_name], nested, _OK


def check_call(function: dict, call: dict, answer: dict, language: str = "python") -> Verdict:
    """Check one decoded call ``{name: {arg: value}}`` against one answer ``{name: {param: [allowed]}}``."""
    name = function["name"]
    allowed_by_param: dict[str, list] = next(iter(answer.values()))
    if name not in call:
        return _fail(
            "simple_function_checker:wrong_func_name", f"Function name {name!r} not found in model output."
        )
    args = call[name]
    schema = function.get("parameters") or {}
    documented = schema.get("properties") or {}
    for param in schema.get("required") or []:
        if param not in args:
            return _fail(
                "simple_function_checker:missing_required", f"Missing required parameter: {param!r}."
            )
    for param, value in args.items():
        if param not in documented or param not in allowed_by_param:
            return _fail("simple_function_checker:unexpected_param", f"Unexpected parameter: {param!r}.")
        allowed = allowed_by_param[param]
        spec = documented[param]
        value, wanted, nested, verdict = _convert(language, param, value, spec)
        if not verdict.valid:
            return verdict
        if spec.get("type") == "tuple" and type(value) is tuple:
            value = list(value)  # answers went through JSON, where tuples became lists
        if language == "python" and wanted is float and type(value) is int:
            value = float(value)
        is_variable = False
        if wanted is not None:
            verdict, is_variable = _type_check(param, value, allowed, wanted, nested)
            if not verdict.valid:
                return verdict
        if not is_variable and wanted is not None:
            special = None
            if wanted is dict:
                special = _dict_check(param, value, allowed)
            elif wanted is list and nested is dict:
                special = _list_of_dicts_check(param, value, allowed)
            elif wanted is str:
                special = _string_check(param, value, allowed)
            elif wanted is list:
                special = _list_check(param, value, allowed)
            if special is not None:
                if not special.valid:
                    return special
                continue
        if value not in _as_seq(allowed):
            return _fail(
                "value_error:others", f"Invalid value for {param!r}: {value!r}. Expected one of {allowed}."
            )
    for param, allowed in allowed_by_param.items():
        if param not in args and "" not in _as_seq(allowed):
            return _fail(
                "simple_function_checker:missing_optional",
                f"Parameter {param!r} not provided and not marked as optional.",
            )
    return _OK


# ------------------------------------------------------------------------------- one item
def is_call_list(decoded: Any) -> bool:
    """BFCL's format rule: a list of single-key dicts whose value is an argument dict."""
    return isinstance(decoded, list) and all(
        isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict)
        for item in decoded
    )


def has_call(decoded: Any) -> bool:
    """Whether anything counts as a call (``[]``, ``[{}]`` and malformed output do not)."""
    return is_call_list(decoded) and len(decoded) > 0 and not (len(decoded) == 1 and len(decoded[0]) == 0)


def is_relevance_category(category: str) -> bool:
    """Categories scored only on whether a call was made (no possible answer)."""
    return bfcl_category(category).kind in RELEVANCE_KINDS


def _find_function(functions: Sequence[dict] | dict, name: str) -> dict | None:
    if isinstance(functions, dict):
        return functions
    return next((function for function in functions if function.get("name") == name), None)


def _check_parallel(
    functions: Sequence[dict], calls: list[dict], answers: list[dict], language: str
) -> Verdict:
    if len(calls) != len(answers):
        return _fail(
            "parallel_function_checker_no_order:wrong_count",
            f"Expected {len(answers)} calls, got {len(calls)}.",
        )
    matched: set[int] = set()
    for index, answer in enumerate(answers):
        name = next(iter(answer))
        function = _find_function(functions, name)
        if function is None:
            return _fail("checker:missing_function_doc", f"No function document named {name!r}.")
        errors: list[str] = []
        for position, call in enumerate(calls):
            if position in matched:
                continue
            verdict = check_call(function, call, answer, language)
            if verdict.valid:
                matched.add(position)
                break
            errors.append(f"call {position}: {verdict.error_type}: {'; '.join(verdict.errors)}")
        else:
            return Verdict(
                False,
                "parallel_function_checker_no_order:cannot_find_match",
                [f"No call matches answer {index} ({name!r}).", *errors],
            )
    return _OK


def check(
    category: str,
    functions: Sequence[dict],
    decoded: list[dict] | ParseResult,
    possible_answer: list[dict] | None,
) -> Verdict:
    """Score one item the way BFCL's AST / relevance checkers do.

    ``decoded`` is the parsed model output; a :class:`ParseResult` carrying a parse error counts as
    "no call" for (ir)relevance categories and as ``ast_decoder:decoder_failed`` otherwise.
    """
    parse_error = None
    if isinstance(decoded, ParseResult):
        parse_error, decoded = decoded.error, decoded.calls
    row = bfcl_category(category)
    if not row.scored:
        raise ValueError(f"category {category!r} ({row.kind}) is not scored by the single-turn checker")
    if row.kind in RELEVANCE_KINDS:
        called = has_call(decoded)
        if row.kind == "irrelevance":
            if called:
                return _fail("irrelevance_error:decoder_success", "A call was made where none should be.")
            return _OK
        if not called:
            return _fail("relevance_error:decoder_failed", f"No call was made. {parse_error or ''}".strip())
        return _OK
    if parse_error is not None:
        return _fail("ast_decoder:decoder_failed", f"Failed to decode the output: {parse_error}")
    if not is_call_list(decoded):
        return _fail(
            "ast_decoder:decoder_wrong_output_format", "Output is not a list of {name: {args}} calls."
        )
    if not possible_answer:
        return _fail("checker:missing_answer", "The item has no possible answer to compare with.")
    language = row.language
    if row.kind in ORDER_FREE_KINDS:
        return _check_parallel(functions, decoded, possible_answer, language)
    if row.kind == "multiple":
        if len(decoded) != len(possible_answer):
            return _fail(
                "multiple_function_checker:wrong_count",
                f"Expected {len(possible_answer)} call, got {len(decoded)}.",
            )
        name = next(iter(possible_answer[0]))
        function = _find_function(functions, name)
        if function is None:
            return _fail("checker:missing_function_doc", f"No function document named {name!r}.")
        return check_call(function, decoded[0], possible_answer[0], language)
    if len(decoded) != 1:
        return _fail("simple_function_checker:wrong_count", f"Expected 1 call, got {len(decoded)}.")
    return check_call(functions[0], decoded[0], possible_answer[0], language)
