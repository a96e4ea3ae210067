"""Side-by-side: our BFCL checker (evaluation.bfcl.checker) vs the official one, on perturbed answers.

For every item of the supported single-turn categories we build the reference answer and a set of
systematic perturbations (wrong value, missing / extra parameter, wrong type, wrong name, reordered
calls, int for float, string case and punctuation, second allowed value, ...), score each decoded
answer with both checkers and report how often the verdicts (and error types) agree.

The official checker runs unchanged from the ``bfcl-eval`` wheel inside a throwaway virtual
environment under /tmp (never the project's). By default the venv gets the wheel with ``--no-deps
--no-index`` (offline) and the two modules the AST checker does not need (the model registry, which
pulls in every API client, and ``filelock``) are stubbed; ``--full-deps`` installs the wheel with its
dependencies plus ``soundfile`` from the package index instead. When no venv can be built the script
says so and exits 0 (skipped).

    .venv/bin/python bench/bfcl_parity.py --data /tmp/dl/bf/bfcl_eval/data \\
        --wheel /tmp/dl/bfcl_eval-2026.3.23-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import venv
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.bfcl import RELEVANCE_KINDS, SUPPORTED_CATEGORIES, load_category  # noqa: E402
from contracts.bfcl import category as bfcl_category  # noqa: E402
from evaluation.bfcl.answers import reference_calls  # noqa: E402
from evaluation.bfcl.checker import check  # noqa: E402

# Runs inside the throwaway venv: reads cases (JSON lines, each with its category's kind and language
# from contracts.bfcl) and writes official verdicts.
_WORKER = r"""
import json, sys, types
if "--stub" in sys.argv:
    registry = types.ModuleType("bfcl_eval.constants.model_config")
    class _Config:  # a model whose tool names keep their dots (underscore_to_dot=False)
        underscore_to_dot = False
    registry.MODEL_CONFIG_MAPPING = {"parity/model": _Config()}
    sys.modules["bfcl_eval.constants.model_config"] = registry
    if "filelock" not in sys.modules:
        try:
            import filelock  # noqa: F401
        except ImportError:
            lock = types.ModuleType("filelock")
            lock.FileLock = object
            sys.modules["filelock"] = lock
from bfcl_eval.constants.enums import Language
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
from bfcl_eval.utils import is_empty_output, is_function_calling_format_output
model = "parity_model" if "--stub" in sys.argv else "Qwen_Qwen3-8B-FC"
for line in sys.stdin:
    case = json.loads(line)
    category, decoded = case["category"], case["decoded"]
    if case["kind"] in ("irrelevance", "relevance"):
        called = not is_empty_output(decoded)
        ok = (not called) if case["kind"] == "irrelevance" else called
        kind = "" if ok else ("irrelevance_error:decoder_success" if case["kind"] == "irrelevance" else "relevance_error:decoder_failed")
        print(json.dumps({"valid": ok, "error_type": kind})); continue
    if not is_function_calling_format_output(decoded):
        print(json.dumps({"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format"})); continue
    language = {"javascript": Language.JAVASCRIPT, "java": Language.JAVA, "python": Language.PYTHON}[case["language"]]
    try:
        result = ast_checker(case["functions"], decoded, case["answer"], language, category, model)
        print(json.dumps({"valid": bool(result["valid"]), "error_type": result.get("error_type", "") if not result["valid"] else ""}))
    except Exception as exc:
        print(json.dumps({"valid": False, "error_type": "official_exception:" + type(exc).__name__}))
"""


def build_venv(root: Path, wheel: Path, full_deps: bool) -> Path | None:
    """A venv under /tmp with the official wheel; ``None`` (with a message) when it cannot be built."""
    python = root / "bin" / "python"
    marker = root / (".full" if full_deps else ".offline")
    if marker.exists():
        return python
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += [str(wheel), "soundfile"] if full_deps else ["--no-deps", "--no-index", str(wheel)]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        print(f"SKIPPED: could not build the official-checker venv at {root}: {str(detail)[-500:]}")
        return None
    marker.write_text("ok\n")
    return python


# -------------------------------------------------------------------------- perturbations
def _bump(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + " zzz"
    if isinstance(value, list):
        return value[:-1] if value else ["zzz"]
    if isinstance(value, dict):
        return {**value, "zzz_key": 1}
    return "zzz"


def _retype(value):
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def perturbations(item) -> list[tuple[str, list]]:
    """(label, decoded) pairs: the reference answer and variations of it."""
    ref = reference_calls(item.category, item.functions, item.ground_truth)
    cases = [("reference", ref), ("empty", []), ("empty_dict", [{}])]
    row = bfcl_category(item.category)
    if row.kind in RELEVANCE_KINDS:
        if not item.functions:
            return cases
        first = item.functions[0]
        required = (first.get("parameters") or {}).get("required") or []
        cases.append(("any_call", [{first["name"]: {p: "x" for p in required}}]))
        return cases
    cases.append(("duplicated", ref + ref[:1]))
    if len(ref) > 1:
        cases.append(("reversed", list(reversed(ref))))
    docs = {d["name"]: d for d in item.functions}
    for index, call in enumerate(ref):
        name, args = next(iter(call.items()))
        spec = (docs.get(name, {}).get("parameters") or {}).get("properties", {})
        required = (docs.get(name, {}).get("parameters") or {}).get("required") or []

        def variant(label, new_name=None, new_args=None, _i=index, _n=name, _a=args):
            out = copy.deepcopy(ref)
            out[_i] = {new_name or _n: _a if new_args is None else new_args}
            cases.append((f"{label}", out))

        variant("wrong_name", new_name=name + "_x")
        if "." in name:
            variant("underscored_name", new_name=name.replace(".", "_"))
        variant("extra_param", new_args={**args, "zzz_unexpected": 1})
        for param in required[:2]:
            variant("missing_required", new_args={k: v for k, v in args.items() if k != param})
        allowed = next(iter(item.ground_truth[index].values()))
        for param, value in list(args.items())[:4]:
            variant("wrong_value", new_args={**args, param: _bump(value)})
            variant("wrong_type", new_args={**args, param: _retype(value)})
            if isinstance(value, str):
                variant("string_case", new_args={**args, param: value.upper().replace(" ", "  ")})
                variant("string_punct", new_args={**args, param: value.replace(" ", "_") + "."})
            if isinstance(value, float) and value.is_integer():
                variant("int_for_float", new_args={**args, param: int(value)})
            if type(value) is int and spec.get(param, {}).get("type") == "float":
                variant("int_for_float", new_args={**args, param: value})
            if type(value) is int:
                variant("float_for_int", new_args={**args, param: float(value)})
            if isinstance(value, list):
                variant("reversed_list", new_args={**args, param: list(reversed(value))})
            if isinstance(value, dict) and value:
                key = next(iter(value))
                variant(
                    "dict_missing_key", new_args={**args, param: {k: v for k, v in value.items() if k != key}}
                )
            options = [o for o in allowed.get(param, []) if o != ""]
            if len(options) > 1 and row.language == "python":
                variant("second_allowed", new_args={**args, param: options[1]})
        for param, options in allowed.items():
            if "" in options and param not in args and param in spec:
                given = next((o for o in options if o != ""), None)
                if given is not None and row.language == "python":
                    variant("optional_given", new_args={**args, param: given})
    return cases


def run(data_dir: Path, python: Path, stub: bool, limit: int | None) -> dict:
    rows = []
    for category in SUPPORTED_CATEGORIES:
        for item in load_category(data_dir, category, limit):
            for label, decoded in perturbations(item):
                rows.append((item, label, decoded))
    payload = "\n".join(
        json.dumps(
            {
                "category": it.category,
                "kind": bfcl_category(it.category).kind,
                "language": bfcl_category(it.category).language,
                "functions": it.functions,
                "decoded": dec,
                "answer": it.ground_truth,
            },
            default=list,
        )
        for it, _, dec in rows
    )
    # Tuples do not survive JSON: cases carrying one are sent as lists (the official checker does
    # the same conversion), so both sides see identical input.
    rows = [(it, label, json.loads(json.dumps(dec, default=list))) for it, label, dec in rows]
    command = [str(python), "-c", _WORKER] + (["--stub"] if stub else [])
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(command, input=payload, capture_output=True, text=True, cwd=tmp, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"official checker worker failed: {done.stderr[-2000:]}")
    official = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(official) == len(rows), (len(official), len(rows))
    table: dict[str, Counter] = defaultdict(Counter)
    disagreements = []
    for (item, label, decoded), theirs in zip(rows, official, strict=True):
        ours = check(item.category, item.functions, decoded, item.ground_truth)
        stats = table[item.category]
        stats["cases"] += 1
        stats["official_valid"] += theirs["valid"]
        if theirs["error_type"].startswith("official_exception"):
            stats["official_exceptions"] += 1
        same = ours.valid == theirs["valid"]
        stats["verdict_agree"] += same
        stats["error_type_agree"] += same and (ours.valid or ours.error_type == theirs["error_type"])
        if not same:
            disagreements.append((item.id, label, ours.error_type, theirs["error_type"]))
    return {"table": table, "disagreements": disagreements}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/dl/bf/bfcl_eval/data"))
    parser.add_argument("--wheel", type=Path, default=Path("/tmp/dl/bfcl_eval-2026.3.23-py3-none-any.whl"))
    parser.add_argument("--venv", type=Path, default=Path("/tmp/bfcl-parity-venv"))
    parser.add_argument("--full-deps", action="store_true", help="install the wheel's dependencies (network)")
    parser.add_argument("--limit", type=int, default=None, help="items per category")
    args = parser.parse_args(argv)
    if not args.data.is_dir() or not args.wheel.is_file():
        print(f"SKIPPED: need BFCL data at {args.data} and the wheel at {args.wheel}")
        return 0
    python = build_venv(args.venv, args.wheel, args.full_deps)
    if python is None:
        return 0
    result = run(args.data, python, stub=not args.full_deps, limit=args.limit)
    print(
        f"# BFCL checker parity — {date.today()} — {platform.node()} ({platform.machine()}, {platform.python_version()})"
    )
    print(f"{'category':<24}{'cases':>8}{'off.valid':>10}{'verdict=':>10}{'err.type=':>10}{'off.exc':>8}")
    totals: Counter = Counter()
    for category, stats in result["table"].items():
        totals.update(stats)
        print(
            f"{category:<24}{stats['cases']:>8}{stats['official_valid']:>10}{stats['verdict_agree']:>10}"
            f"{stats['error_type_agree']:>10}{stats['official_exceptions']:>8}"
        )
    print(
        f"{'TOTAL':<24}{totals['cases']:>8}{totals['official_valid']:>10}{totals['verdict_agree']:>10}"
        f"{totals['error_type_agree']:>10}{totals['official_exceptions']:>8}"
    )
    print(f"verdict agreement: {totals['verdict_agree'] / max(totals['cases'], 1):.4%}")
    for row in result["disagreements"][:40]:
        print("DISAGREE", *row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
