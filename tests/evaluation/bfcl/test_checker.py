"""The checker on the official fixture items: reference answers valid, perturbations get BFCL's verdicts."""

from __future__ import annotations

import copy

import pytest

from contracts.bfcl import SUPPORTED_CATEGORIES, load_category
from contracts.chat import format_tool_calls
from evaluation.bfcl.answers import reference_calls
from evaluation.bfcl.checker import check, check_call, normalize_string
from evaluation.bfcl.parse import ParseResult, parse_tool_calls


def _items(fixtures_dir, categories=SUPPORTED_CATEGORIES):
    return [item for category in categories for item in load_category(fixtures_dir, category)]


def _item(fixtures_dir, item_id):
    category = (
        item_id.rsplit("_", 1)[0]
        if not item_id.startswith("live")
        else item_id.split("_", 2)[0] + "_" + item_id.split("_", 2)[1]
    )
    return next(i for i in load_category(fixtures_dir, category) if i.id == item_id)


def _check(item, decoded):
    return check(item.category, item.functions, decoded, item.ground_truth)


def test_every_fixture_reference_answer_is_valid(fixtures_dir):
    items = _items(fixtures_dir)
    assert len(items) >= 50
    for item in items:
        decoded = reference_calls(item.category, item.functions, item.ground_truth)
        verdict = _check(item, decoded)
        assert verdict.valid, (item.id, verdict)
        # ...and the same through our text format and the parser.
        assert _check(item, parse_tool_calls(format_tool_calls(decoded))).valid, item.id


def _ast_items(fixtures_dir):
    return [i for i in _items(fixtures_dir) if "relevance" not in i.category]


def test_wrong_value_is_invalid(fixtures_dir):
    for item in _ast_items(fixtures_dir):
        ref = reference_calls(item.category, item.functions, item.ground_truth)
        name, args = next(iter(ref[0].items()))
        param = next(iter(args))
        bad = copy.deepcopy(ref)
        value = args[param]
        if isinstance(value, bool):
            bad[0][name][param] = not value
        elif isinstance(value, (int, float)):
            bad[0][name][param] = value + 7
        elif isinstance(value, list):
            bad[0][name][param] = [*value, "zzz"]
        else:
            bad[0][name][param] = "zzz other value"
        verdict = _check(item, bad)
        assert not verdict.valid, item.id
        assert verdict.error_type.startswith(
            ("value_error", "parallel_function_checker_no_order", "type_error")
        ), (
            item.id,
            verdict,
        )


def test_missing_required_extra_param_and_wrong_name(fixtures_dir):
    for item in _ast_items(fixtures_dir):
        ref = reference_calls(item.category, item.functions, item.ground_truth)
        name, args = next(iter(ref[0].items()))
        parallel = "parallel" in item.category
        doc = next(f for f in item.functions if f["name"] == name)
        required = doc["parameters"].get("required", [])
        if required:
            missing = copy.deepcopy(ref)
            del missing[0][name][required[0]]
            verdict = _check(item, missing)
            assert not verdict.valid
            if not parallel:
                assert verdict.error_type == "simple_function_checker:missing_required", item.id
        extra = copy.deepcopy(ref)
        extra[0][name]["zzz_unexpected"] = 1
        verdict = _check(item, extra)
        assert not verdict.valid
        if not parallel:
            assert verdict.error_type == "simple_function_checker:unexpected_param"
        renamed = copy.deepcopy(ref)
        renamed[0] = {name + "_v2": args}
        verdict = _check(item, renamed)
        assert not verdict.valid
        if not parallel:
            assert verdict.error_type == "simple_function_checker:wrong_func_name"


def test_dotted_names_are_not_underscored(fixtures_dir):
    item = _item(fixtures_dir, "parallel_multiple_0")  # math_toolkit.sum_of_multiples
    ref = reference_calls(item.category, item.functions, item.ground_truth)
    underscored = [{next(iter(c)).replace(".", "_"): next(iter(c.values()))} for c in ref]
    assert _check(item, ref).valid and not _check(item, underscored).valid


def test_parallel_calls_in_any_order_and_count(fixtures_dir):
    for item in _items(
        fixtures_dir, ("parallel", "parallel_multiple", "live_parallel", "live_parallel_multiple")
    ):
        ref = reference_calls(item.category, item.functions, item.ground_truth)
        assert len(ref) > 1
        assert _check(item, list(reversed(ref))).valid, item.id
        verdict = _check(item, ref[:-1])
        assert verdict.error_type == "parallel_function_checker_no_order:wrong_count"
        assert not _check(item, ref + ref[:1]).valid


def test_wrong_type(fixtures_dir):
    item = _item(fixtures_dir, "simple_python_0")  # calculate_triangle_area(base: integer, height: integer)
    ref = reference_calls(item.category, item.functions, item.ground_truth)
    bad = copy.deepcopy(ref)
    bad[0]["calculate_triangle_area"]["base"] = str(ref[0]["calculate_triangle_area"]["base"])
    verdict = _check(item, bad)
    assert not verdict.valid and verdict.error_type == "type_error:simple"
    bad[0]["calculate_triangle_area"]["base"] = float(
        ref[0]["calculate_triangle_area"]["base"]
    )  # float for int
    assert _check(item, bad).error_type == "type_error:simple"


def test_int_for_float_is_promoted():
    function = {
        "name": "f",
        "parameters": {"type": "dict", "properties": {"x": {"type": "float"}}, "required": ["x"]},
    }
    answer = [{"f": {"x": [5.0]}}]
    assert check("simple_python", [function], [{"f": {"x": 5}}], answer).valid
    assert check("simple_python", [function], [{"f": {"x": 5.0}}], answer).valid
    assert not check("simple_python", [function], [{"f": {"x": True}}], answer).valid
    assert check("simple_python", [function], [{"f": {"x": 6}}], answer).error_type == "value_error:others"


def test_string_normalisation():
    assert normalize_string("April 1, 2024") == normalize_string("april 1 2024") == "april12024"
    function = {
        "name": "f",
        "parameters": {"type": "dict", "properties": {"s": {"type": "string"}}, "required": ["s"]},
    }
    answer = [{"f": {"s": ["New York, NY"]}}]
    assert check("simple_python", [function], [{"f": {"s": "new york ny"}}], answer).valid
    assert check("simple_python", [function], [{"f": {"s": "NEW_YORK-NY."}}], answer).valid
    verdict = check("simple_python", [function], [{"f": {"s": "New Jersey"}}], answer)
    assert verdict.error_type == "value_error:string" and "New Jersey" in verdict.errors[0]


def test_optional_parameters():
    props = {"a": {"type": "integer"}, "b": {"type": "string"}}
    function = {"name": "f", "parameters": {"type": "dict", "properties": props, "required": ["a"]}}
    optional = [{"f": {"a": [1], "b": ["x", ""]}}]
    assert check("simple_python", [function], [{"f": {"a": 1}}], optional).valid
    assert check("simple_python", [function], [{"f": {"a": 1, "b": "X"}}], optional).valid
    expected = [{"f": {"a": [1], "b": ["x"]}}]
    verdict = check("simple_python", [function], [{"f": {"a": 1}}], expected)
    assert verdict.error_type == "simple_function_checker:missing_optional"


def test_lists_tuples_dicts_and_nested_types():
    props = {
        "xs": {"type": "array", "items": {"type": "integer"}},
        "t": {"type": "tuple", "items": {"type": "string"}},
        "d": {"type": "dict", "properties": {}},
        "ld": {"type": "array", "items": {"type": "dict"}},
    }
    function = {"name": "f", "parameters": {"type": "dict", "properties": props, "required": list(props)}}
    answer = [
        {
            "f": {
                "xs": [[1, 2]],
                "t": [["a b", "c"]],
                "d": [{"k": ["V", "w"], "o": ["", 1]}],
                "ld": [[{"n": [1]}]],
            }
        }
    ]
    good = {"xs": [1, 2], "t": ("A_B", "c"), "d": {"k": "v"}, "ld": [{"n": 1}]}
    assert check("simple_python", [function], [{"f": good}], answer).valid
    cases = {
        "xs": ([2, 1], "value_error:list/tuple"),
        "t": (["c", "a b"], "value_error:list/tuple"),
        "d": ({"k": "v", "zz": 1}, "value_error:dict_key"),
        "ld": ([{"n": 2}], "value_error:dict_value"),
    }
    for param, (value, error_type) in cases.items():
        verdict = check("simple_python", [function], [{"f": {**good, param: value}}], answer)
        assert verdict.error_type == error_type, (param, verdict)
    verdict = check("simple_python", [function], [{"f": {**good, "xs": [1, "2"]}}], answer)
    assert verdict.error_type == "type_error:nested"


def test_java_and_javascript_arguments_must_be_literals(fixtures_dir):
    java = _item(fixtures_dir, "simple_java_22")  # ArrayList<Long> ids, integer newStatus
    ref = reference_calls(java.category, java.functions, java.ground_truth)
    args = next(iter(ref[0].values()))
    assert args["ids"].startswith("new ArrayList") and _check(java, ref).valid
    raw = [{next(iter(ref[0])): {**args, "newStatus": 2}}]
    assert _check(java, raw).error_type == "type_error:java"
    js = _item(fixtures_dir, "simple_javascript_0")  # inputField: String, isComplete: Boolean
    assert _check(js, [{"validateUserInput": {"inputField": "'userInputField'", "isComplete": "true"}}]).valid
    assert (
        _check(js, [{"validateUserInput": {"inputField": "userInputField", "isComplete": True}}]).error_type
        == "type_error:js"
    )


def test_relevance_categories(fixtures_dir):
    irrelevant = load_category(fixtures_dir, "irrelevance")[0]
    name = irrelevant.functions[0]["name"]
    assert _check(irrelevant, []).valid
    assert _check(irrelevant, ParseResult([], "not a function call list")).valid
    assert _check(irrelevant, [{}]).valid
    assert _check(irrelevant, [{name: {}}]).error_type == "irrelevance_error:decoder_success"
    relevant = load_category(fixtures_dir, "live_relevance")[0]
    assert _check(relevant, [{relevant.functions[0]["name"]: {"prompt": "x"}}]).valid
    assert _check(relevant, []).error_type == "relevance_error:decoder_failed"


def test_parse_failures_are_wrong_answers_with_a_reason(fixtures_dir):
    item = load_category(fixtures_dir, "simple_python")[0]
    verdict = _check(item, parse_tool_calls('<tool_call>\n{"name": oops}\n</tool_call>'))
    assert (
        not verdict.valid
        and verdict.error_type == "ast_decoder:decoder_failed"
        and "invalid JSON" in verdict.errors[0]
    )
    assert _check(item, ["not a call"]).error_type == "ast_decoder:decoder_wrong_output_format"
    assert _check(item, []).error_type == "simple_function_checker:wrong_count"


@pytest.mark.parametrize("bad", [{"f": 1}, {"f": {"x": 1}, "g": {}}])
def test_malformed_decoded_calls_do_not_crash(bad):
    function = {
        "name": "f",
        "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": []},
    }
    assert not check("multiple", [function], [bad], [{"f": {"x": [1]}}]).valid


def test_json_schema_types_for_our_own_items():
    props = {"n": {"type": "number"}, "o": {"type": "object"}, "free": {}}
    function = {"name": "api.get", "parameters": {"type": "object", "properties": props, "required": ["n"]}}
    answer = {"api.get": {"n": [2.0], "o": [{"k": ["v"]}, ""], "free": [3, ""]}}
    assert check_call(function, {"api.get": {"n": 2, "o": {"k": "v"}, "free": 3}}, answer).valid
    assert not check_call(function, {"api.get": {"n": 2, "free": 4}}, answer).valid
