"""The unseen-API benchmark: BFCL-format items built from held-out providers' operations.

The providers passed here are never used for synthesis (forge.synth.trajectories skips them), so a
model that scores well has learned to read tool documentation, not to recall it. Items and
answers follow BFCL's files exactly (data/BFCL_v4_*.json and possible_answer/), plus a
``category`` field on each item (``simple``, ``multiple``, ``parallel``, ``irrelevance``):

- item: ``{"id": "unseen_<pattern>_<n>", "category", "question": [[{"role": "user", "content"}]],
  "function": [tool documents with JSON Schema parameters]}``
- answer: ``{"id", "ground_truth": [{function_name: {param: [allowed values...]}}]}``, one dict per
  expected call; an optional parameter the question does not mention is listed with ``""``
  (meaning "may be omitted") and its default when the schema has one, as BFCL does.
- irrelevance items get **no** answer entry (BFCL has no possible_answer file for them either): the
  expected behaviour is no call at all.

Only operations whose parameters are flat (strings, numbers, booleans, arrays of those) become
targets: those are the values BFCL's matching rules compare reliably.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from forge.core.stats import StepStats
from forge.synth.arguments import CannotSatisfy, generate_arguments, merge_all_of
from forge.synth.executor import MockExecutor
from forge.synth.trajectories import tool_doc
from forge.text.render import TemplateGenerator

UNSEEN_PATTERNS = ("simple", "multiple", "parallel", "irrelevance")
_SCALARS = {"string", "integer", "number", "boolean"}


def build_unseen_items(
    api_rows: Iterable[dict],
    *,
    seed: int,
    n_items: int,
    patterns: Sequence[str] = UNSEEN_PATTERNS,
    stats: StepStats | None = None,
) -> tuple[list[dict], list[dict]]:
    """(items, possible answers) for ``n_items`` items, patterns taken in turn (item i gets
    ``patterns[i % len(patterns)]``), numbered per pattern from 0. ``api_rows`` must be the
    held-out providers' rows only. An item that cannot be built (e.g. no API with two usable
    operations for ``multiple``) is skipped and counted in ``stats`` as ``no_candidate_<pattern>``."""
    unknown = set(patterns) - set(UNSEEN_PATTERNS)
    if unknown:
        raise ValueError(f"unknown patterns {sorted(unknown)}; known: {UNSEEN_PATTERNS}")
    stats = stats if stats is not None else StepStats("unseen_items")
    groups = _usable_groups(api_rows, stats)
    keys = sorted(groups)
    gen = TemplateGenerator()
    items: list[dict] = []
    answers: list[dict] = []
    counters: dict[str, int] = defaultdict(int)
    for i in range(n_items):
        pattern = patterns[i % len(patterns)]
        rng = random.Random(f"{seed}|unseen|{i}")
        built = _build(pattern, rng, groups, keys, gen)
        if built is None:
            stats.drop(f"no_candidate_{pattern}", f"item {i}")
            continue
        question, functions, truth = built
        item_id = f"unseen_{pattern}_{counters[pattern]}"
        counters[pattern] += 1
        items.append({
            "id": item_id, "category": pattern,
            "question": [[{"role": "user", "content": question}]], "function": functions,
        })  # fmt: skip
        if truth is not None:
            answers.append({"id": item_id, "ground_truth": truth})
        stats.keep()
    return items, answers


def _usable_groups(api_rows: Iterable[dict], stats: StepStats) -> dict[tuple, list[tuple[dict, dict, bool]]]:
    """API key -> [(row, schema, is_target)]: callable operations (valid schema), flagged when
    their parameters are flat enough to be a benchmark target."""
    by_api: dict[tuple, list[dict]] = defaultdict(list)
    for row in api_rows:
        by_api[(row.get("provider") or "", row.get("api_name") or "", row.get("version") or "")].append(row)
    groups: dict[tuple, list[tuple[dict, dict, bool]]] = {}
    for key, rows in by_api.items():
        ex = MockExecutor(rows)
        usable = []
        for row in rows:
            if row.get("function_name") not in ex or ex.validator(row["function_name"])[1]:
                stats.drop("unusable_operation", f"{row.get('api_id')} {row.get('function_name')}")
                continue
            raw = row.get("parameters")
            schema = raw if isinstance(raw, dict) else json.loads(raw or "{}")
            usable.append((row, schema, _is_target(schema)))
        if usable:
            groups[key] = usable
    return groups


def _is_target(schema: dict) -> bool:
    merged = merge_all_of(schema)
    props = merged.get("properties")
    if not isinstance(props, dict) or not props:
        return False
    for sub in props.values():
        if not isinstance(sub, dict) or any(k in sub for k in ("oneOf", "anyOf", "allOf", "$ref")):
            return False
        t = sub.get("type")
        items = sub.get("items") if isinstance(sub.get("items"), dict) else {}
        if not (t in _SCALARS or (t == "array" and items.get("type") in _SCALARS)):
            return False
    return True


def _build(pattern: str, rng: random.Random, groups: dict, keys: list, gen: TemplateGenerator):
    with_target = [k for k in keys if any(t for _, _, t in groups[k])]
    if pattern == "multiple":
        with_target = [k for k in with_target if len(groups[k]) >= 2]
    if pattern == "irrelevance":
        if len(keys) < 2:
            return None
        key, other = rng.sample(keys, 2)
        tools = rng.sample(groups[key], min(len(groups[key]), rng.randint(1, 3)))
        row, schema, _ = rng.choice(groups[other])
        try:
            args = generate_arguments(schema, rng, include_optional=0.3)
        except CannotSatisfy:
            args = {}
        return (
            gen.write_request([row], [args], pattern="simple", rng=rng),
            [tool_doc(r, s) for r, s, _ in tools],
            None,
        )
    if not with_target:
        return None
    group = groups[rng.choice(with_target)]
    row, schema, _ = rng.choice([g for g in group if g[2]])
    n_calls = rng.randint(2, 3) if pattern == "parallel" else 1
    calls: list[dict] = []
    for _ in range(n_calls * 4):
        try:
            args = generate_arguments(schema, rng, include_optional=0.3)
        except CannotSatisfy:
            return None
        if args and args not in calls:
            calls.append(args)
        if len(calls) == n_calls:
            break
    if len(calls) < n_calls:
        return None
    tools = [(row, schema)]
    if pattern == "multiple":
        others = [(r, s) for r, s, _ in group if r is not row]
        tools += rng.sample(others, min(len(others), rng.randint(1, 3)))
        rng.shuffle(tools)
    question = gen.write_request(
        [row] * n_calls, calls, pattern=pattern if pattern == "parallel" else "simple", rng=rng
    )
    truth = [{row["function_name"]: _allowed(schema, args)} for args in calls]
    return question, [tool_doc(r, s) for r, s in tools], truth


def _allowed(schema: dict, args: dict) -> dict[str, list]:
    """BFCL possible-answer values: the asked value for each given parameter; ``""`` (omit) plus
    the default, if any, for each optional parameter the question leaves out."""
    merged = merge_all_of(schema)
    out: dict[str, list] = {name: [value] for name, value in args.items()}
    for name, sub in (merged.get("properties") or {}).items():
        if name in out:
            continue
        default = sub.get("default") if isinstance(sub, dict) else None
        out[name] = ([default] if default is not None else []) + [""]
    return out
