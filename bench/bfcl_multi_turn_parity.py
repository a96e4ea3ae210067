"""Side-by-side: our multi-turn checker (evaluation.bfcl.environments) vs BFCL's official one.

For every item of the four multi-turn categories we build the ground truth as a model's turns and
perturbations of it — a call dropped, a wrong argument, an extra state-changing call, calls
reordered, an early stop (a turn left unanswered, or the conversation cut short), a call made
where none is right, a call to a name that is not a method — and score each with both checkers.
Ours loads the environment classes from the wheel's files in a worker process and dispatches parsed
calls; the official ``multi_turn_checker`` runs unchanged (it ``eval``s the call strings) inside a
throwaway venv under /tmp that has the wheel installed with ``--no-deps --no-index`` (offline) and
``mpmath`` linked from this project's venv. The wrapper of BFCL's ``eval_runner`` (turn count,
empty steps dropped) is used as is when its imports are available (``--runner-deps``), else repeated
here in a few lines, as ``bench/bfcl_parity.py`` does for the relevance categories.
``--runner-deps`` installs the few packages ``eval_runner`` imports (pinned as the wheel pins them)
from the package index, so the official runner function itself wraps the checker (the model
registry, which imports every API client, is stubbed).

    .venv/bin/python bench/bfcl_multi_turn_parity.py \\
        --data .hephaestus/cache/bfcl_data_bfcl_eval-2026.3.23-py3-none-any/bfcl_eval/data \\
        --wheel .hephaestus/cache/bfcl_eval-2026.3.23-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.bfcl import MULTI_TURN_CATEGORIES, load_multi_turn_category  # noqa: E402
from evaluation.bfcl.data import environment_dir, extract_environment_source  # noqa: E402
from evaluation.bfcl.environments import EnvironmentWorker, parse_call  # noqa: E402

# Runs inside the throwaway venv: one case per input line -> one verdict per output line.
_WORKER = r"""
import json, re, sys, types
# The model registry imports every API client; the runner only needs the name to exist.
registry = types.ModuleType("bfcl_eval.constants.model_config")
registry.MODEL_CONFIG_MAPPING = {}
sys.modules["bfcl_eval.constants.model_config"] = registry
from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response
try:  # the real runner wrapper when its dependencies are installed (--runner-deps)
    from bfcl_eval.eval_checker.eval_runner import _evaluate_single_multi_turn_entry
    class _Identity:  # decoded input is already BFCL's list of call strings
        def decode_execute(self, result, has_tool_call_tag=False):
            return result
    WRAPPER = "eval_runner"
except Exception:
    _evaluate_single_multi_turn_entry = None
    WRAPPER = "repeated"
print(json.dumps({"wrapper": WRAPPER}), flush=True)

def repeated_wrapper(turns, truth, entry, category, model):
    if type(turns) != list:
        return {"valid": False, "error": {"error_type": "multi_turn:inference_error"}}
    if len(turns) != len(truth):
        return {"valid": False, "error": {"error_type": "multi_turn:force_terminated"}}
    decoded = [[step for step in turn if not is_empty_execute_response(step)] for turn in turns]
    result = multi_turn_checker(decoded, truth, entry, category, model)
    return {"valid": result["valid"], "error": result}

for index, line in enumerate(sys.stdin):
    case = json.loads(line)
    model = f"parity{index}"
    entry = {"id": case["id"], "initial_config": case["initial_config"], "involved_classes": case["involved_classes"]}
    category = case["id"].rsplit("_", 1)[0]
    try:
        if _evaluate_single_multi_turn_entry is not None:
            out = _evaluate_single_multi_turn_entry(_Identity(), case["id"], case["turns"], case["truth"], entry, model, category)
        else:
            out = repeated_wrapper(case["turns"], case["truth"], entry, category, model)
        error_type = "" if out["valid"] else out["error"].get("error_type", "")
        print(json.dumps({"valid": bool(out["valid"]), "error_type": error_type}), flush=True)
    except Exception as exc:
        print(json.dumps({"valid": False, "error_type": "official_exception:" + type(exc).__name__ + ":" + str(exc)[:200]}), flush=True)
    prefix = re.sub(r"[-./:]", "_", model) + "_"
    for key in [k for k in vars(multi_turn_utils) if k.startswith(prefix)]:  # free this case's instances
        del vars(multi_turn_utils)[key]
"""


#: What ``eval_runner`` imports (besides the stubbed model registry), pinned as the wheel pins them.
RUNNER_DEPS = [
    "numpy==1.26.4", "pandas", "tqdm", "python-dotenv", "filelock==3.20.0", "overrides", "mpmath==1.3.0",
    "tenacity", "tree_sitter==0.21.3", "tree-sitter-java==0.21.0", "tree-sitter-javascript==0.21.4",
]  # fmt: skip


def build_venv(root: Path, wheel: Path, runner_deps: bool) -> Path | None:
    """A venv under /tmp with the official wheel (and ``mpmath``); ``None`` with a message if impossible."""
    python = root / "bin" / "python"
    marker = root / (".runner" if runner_deps else ".offline")
    if marker.exists():
        return python
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--no-deps", "--no-index", str(wheel)],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if runner_deps:
            subprocess.run([*pip, *RUNNER_DEPS], check=True, capture_output=True, text=True, timeout=1800)
        else:  # math_api imports mpmath: link ours (pure Python) instead of downloading it
            import mpmath

            site = subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            shelf = root / "linked"
            shelf.mkdir(exist_ok=True)
            link = shelf / "mpmath"
            if not link.exists():
                link.symlink_to(Path(mpmath.__file__).parent)
            (Path(site) / "linked_mpmath.pth").write_text(f"{shelf}\n")
    except (OSError, subprocess.SubprocessError, ImportError) as exc:
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


def _wrong_argument(text: str) -> str | None:
    call = parse_call(text)
    if call.error is not None:
        return None
    if call.kwargs:
        key = next(iter(call.kwargs))
        return type(call)(call.name, call.args, {**call.kwargs, key: _bump(call.kwargs[key])}).text()
    if call.args:
        return type(call)(call.name, (_bump(call.args[0]), *call.args[1:]), call.kwargs).text()
    return None


def _as_turns(truth: list[list[str]]) -> list[list[list[str]]]:
    """The ground truth as a model's turns: each non-empty turn one step with all its calls."""
    return [[list(calls)] if calls else [] for calls in truth]


def perturbations(truth: list[list[str]]) -> list[tuple[str, list]]:
    """(label, turns) pairs: the ground truth and variations of it (decoded BFCL string calls)."""
    cases: list[tuple[str, list]] = [("reference", _as_turns(truth))]
    cases.append(("stepwise", [[[c] for c in calls] for calls in truth]))
    cases.append(("with_empty_steps", [[[], *turn, [""]] for turn in _as_turns(truth)]))
    filled = [t for t, calls in enumerate(truth) if calls]
    empty = [t for t, calls in enumerate(truth) if not calls]
    # Up to three turns with calls, spread over the conversation.
    chosen = sorted({filled[0], filled[len(filled) // 2], filled[-1]}) if filled else []

    def variant(label, edit):
        turns = copy.deepcopy(truth)
        if edit(turns) is not False:
            cases.append((label, _as_turns(turns)))

    for t in chosen:
        variant("drop_last_call", lambda turns, t=t: turns[t].pop())
        variant("drop_first_call", lambda turns, t=t: turns[t].pop(0))
        for index in range(min(len(truth[t]), 2)):
            wrong = _wrong_argument(truth[t][index])
            if wrong is not None:
                variant("wrong_argument", lambda turns, t=t, i=index, w=wrong: turns[t].__setitem__(i, w))
        variant("duplicate_call", lambda turns, t=t: turns[t].append(turns[t][-1]))
        later = [c for u in filled if u > t for c in truth[u]]
        if later:  # a state-changing call of a later turn made too early
            variant("extra_call", lambda turns, t=t, c=later[0]: turns[t].append(c))
        if len(set(truth[t])) > 1:
            variant("reordered", lambda turns, t=t: turns[t].reverse())
        variant("non_method_call", lambda turns, t=t: turns[t].append("zzz_not_a_method(x=1)"))
        variant("blocked_name", lambda turns, t=t: turns[t].append("exit()"))
        name = truth[t][0].split("(", 1)[0]
        variant(
            "wrong_name",
            lambda turns, t=t, n=name: turns[t].__setitem__(0, turns[t][0].replace(n, n + "_x", 1)),
        )
        variant("unanswered_turn", lambda turns, t=t: turns[t].clear())
    for t in empty:  # miss_param / miss_func: guessing instead of asking
        nxt = next((truth[u] for u in range(t + 1, len(truth)) if truth[u]), None)
        if nxt:
            variant("call_in_empty_turn", lambda turns, t=t, c=nxt: turns[t].extend(c))
    if len(truth) > 1:
        cases.append(("early_stop", _as_turns(truth)[:-1]))
    cases.append(("no_turns", []))
    return cases


def run(data_dir: Path, source_dir: Path, python: Path, limit: int | None) -> dict:
    rows = []
    for category in MULTI_TURN_CATEGORIES:
        for item in load_multi_turn_category(data_dir, category, limit):
            for label, turns in perturbations(item.ground_truth):
                rows.append((item, label, turns))
    payload = "\n".join(
        json.dumps(
            {
                "id": item.id,
                "initial_config": item.initial_config,
                "involved_classes": item.involved_classes,
                "turns": turns,
                "truth": item.ground_truth,
            }
        )
        for item, _, turns in rows
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [str(python), "-c", _WORKER], input=payload, capture_output=True, text=True, cwd=tmp, check=False
        )
    official_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"official checker worker failed: {done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    wrapper = json.loads(lines[0])["wrapper"]
    official = [json.loads(line) for line in lines[1:]]
    assert len(official) == len(rows), (len(official), len(rows))
    started = time.perf_counter()
    with EnvironmentWorker(source_dir, timeout_s=120) as worker:
        ours = [worker.check(item.entry(), turns, item.ground_truth) for item, _, turns in rows]
    ours_s = time.perf_counter() - started
    by_category: dict[str, Counter] = defaultdict(Counter)
    by_label: dict[str, Counter] = defaultdict(Counter)
    disagreements = []
    for (item, label, _), mine, theirs in zip(rows, ours, official, strict=True):
        same = mine["valid"] == theirs["valid"]
        same_type = same and (mine["valid"] or mine["error_type"] == theirs["error_type"])
        for stats in (by_category[item.category], by_label[label]):
            stats["cases"] += 1
            stats["official_valid"] += theirs["valid"]
            stats["verdict_agree"] += same
            stats["error_type_agree"] += same_type
            stats["official_exceptions"] += theirs["error_type"].startswith("official_exception")
        if not same_type:
            disagreements.append((item.id, label, mine["error_type"], theirs["error_type"]))
    items = {c: len({r[0].id for r in rows if r[0].category == c}) for c in MULTI_TURN_CATEGORIES}
    return {
        "by_category": by_category,
        "by_label": by_label,
        "items": items,
        "disagreements": disagreements,
        "wrapper": wrapper,
        "seconds": {"official": official_s, "ours": ours_s},
    }


def _table(title: str, table: dict[str, Counter], first: str, items: dict | None = None) -> list[str]:
    head = f"{first:<26}" + (f"{'items':>7}" if items else "")
    lines = [title, head + f"{'cases':>8}{'off.valid':>10}{'verdict=':>10}{'err.type=':>10}{'disagree':>9}"]
    totals: Counter = Counter()
    for key, stats in table.items():
        totals.update(stats)
        lines.append(
            f"{key:<26}" + (f"{items[key]:>7}" if items else "")
            + f"{stats['cases']:>8}{stats['official_valid']:>10}{stats['verdict_agree']:>10}"
            f"{stats['error_type_agree']:>10}{stats['cases'] - stats['verdict_agree']:>9}"
        )  # fmt: skip
    lines.append(
        f"{'TOTAL':<26}" + (f"{sum(items.values()):>7}" if items else "")
        + f"{totals['cases']:>8}{totals['official_valid']:>10}{totals['verdict_agree']:>10}"
        f"{totals['error_type_agree']:>10}{totals['cases'] - totals['verdict_agree']:>9}"
    )  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(__file__).resolve().parents[1] / ".hephaestus" / "cache"
    parser.add_argument(
        "--data", type=Path, default=cache / "bfcl_data_bfcl_eval-2026.3.23-py3-none-any/bfcl_eval/data"
    )
    parser.add_argument("--wheel", type=Path, default=cache / "bfcl_eval-2026.3.23-py3-none-any.whl")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/bfcl-multi-turn-parity-venv"))
    parser.add_argument(
        "--runner-deps", action="store_true", help="install what eval_runner imports (package index)"
    )
    parser.add_argument("--limit", type=int, default=None, help="items per category")
    args = parser.parse_args(argv)
    if not args.data.is_dir() or not args.wheel.is_file():
        print(f"SKIPPED: need BFCL data at {args.data} and the wheel at {args.wheel}")
        return 0
    source = environment_dir(args.data)
    if not source.is_dir():
        source = extract_environment_source(args.wheel, args.data.parent.parent)
    python = build_venv(args.venv, args.wheel, args.runner_deps)
    if python is None:
        return 0
    result = run(args.data, source, python, args.limit)
    print(
        f"# BFCL multi-turn checker parity — {date.today()} — {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}); official wrapper: {result['wrapper']}"
    )
    print(*_table("## by category", result["by_category"], "category", result["items"]), sep="\n")
    print()
    print(*_table("## by perturbation", result["by_label"], "perturbation"), sep="\n")
    print()
    seconds = result["seconds"]
    print(f"checking time: official {seconds['official']:.1f} s, ours {seconds['ours']:.1f} s (all cases)")
    print(f"verdict or error-type disagreements: {len(result['disagreements'])}")
    for row in result["disagreements"][:40]:
        print("DISAGREE", *row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
