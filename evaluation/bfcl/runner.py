"""Run a model on BFCL (or BFCL-format items, such as the unseen-API benchmark) and score it.

Grain of the per-item rows: one benchmark item. Accuracies are fractions in [0, 1].

Summary numbers follow BFCL's leaderboard code (``eval_checker/eval_runner_helper.py``), over the
categories that were run (BFCL itself counts a missing category as 0 and shows N/A; here
``complete`` says whether every member of a group was present, subgroups complete too). The groups,
their members and their weighting come from :data:`contracts.bfcl.SUMMARY_GROUPS` and the category
table:

* ``non_live_simple`` = unweighted mean of simple_python, simple_java, simple_javascript;
* ``non_live_ast`` = unweighted mean of non_live_simple, multiple, parallel, parallel_multiple;
* ``live_ast`` = item-weighted mean of live_simple, live_multiple, live_parallel, live_parallel_multiple;
* ``multi_turn`` = unweighted mean of multi_turn_base, multi_turn_miss_func, multi_turn_miss_param,
  multi_turn_long_context (conversations run by :mod:`evaluation.bfcl.multi_turn`);
* ``irrelevance`` = unweighted mean of irrelevance and live_irrelevance; ``relevance`` = live_relevance;
* ``overall_mean`` = unweighted mean of all categories run (ours, for non-BFCL item sets).

With ``limit_per_category`` the numbers are on the first N items of each file, like BFCL's partial
evaluation, not comparable to the leaderboard.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.bfcl import (
    OVERALL,
    SUPPORTED_CATEGORIES,
    BfclItem,
    group_members,
    groups_in_computation_order,
    load_category,
    load_multi_turn_category,
)
from contracts.bfcl import category as bfcl_category
from evaluation.bfcl.checker import Verdict, check
from evaluation.bfcl.data import environment_dir, prompt_functions
from evaluation.bfcl.multi_turn import Limits, run_conversations, score_conversations, stop_reasons
from evaluation.bfcl.parse import ParseResult, parse_tool_calls
from evaluation.generation.generate import generate


def load_model(model_dir: str | os.PathLike[str], device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a saved directory: bf16 on CUDA, fp32 on CPU, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model.eval()
    return model, tokenizer


def item_prompt(item: BfclItem) -> dict[str, Any]:
    """Conversation for one item: its first-turn messages and BFCL's prompt-side function documents."""
    return {"messages": item.messages, "tools": prompt_functions(item.functions, item.category)}


#: the error type of an item whose prompt and answer budget exceed the model's positions (not generated)
PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class Unanswered:
    """A response that was never generated, and why (scored wrong with ``reason`` as its error type)."""

    reason: str


def evaluate_items(
    model: Any,
    tokenizer: Any,
    items: Sequence[BfclItem],
    batch_size: int = 8,
    max_new_tokens: int = 256,
) -> dict[str, Any]:
    """Generate an answer for every item with an already loaded model, then score them. An item whose
    prompt and ``max_new_tokens`` exceed the model's positions is not generated: it is wrong with error
    type :data:`PROMPT_TOO_LONG`, counted as ``prompts_too_long`` (an irrelevance item is not right for
    saying nothing it was never asked)."""
    prompts = [item_prompt(item) for item in items]
    texts = generate(model, tokenizer, prompts, max_new_tokens, batch_size, skip_too_long=True)
    result = score_items(items, None, [Unanswered(PROMPT_TOO_LONG) if t is None else t for t in texts])
    too_long = sum(t is None for t in texts)
    if too_long:
        result["prompts_too_long"] = too_long
    return result


def evaluate_bfcl(
    model_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    categories: Sequence[str] = SUPPORTED_CATEGORIES,
    limit_per_category: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: str | None = None,
    environments_dir: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    multi_turn_limit_per_category: int | None = None,
) -> dict[str, Any]:
    """Load the model in ``model_dir``, run the BFCL ``categories`` from ``data_dir`` and score them.

    Multi-turn categories run as conversations against the environment classes in
    ``environments_dir`` (default: beside ``data_dir``, where the download unpacks them), the first
    ``multi_turn_limit_per_category`` of each (``None``: ``limit_per_category``).
    """
    single = [c for c in categories if not bfcl_category(c).multi_turn]
    items = [item for category in single for item in load_category(data_dir, category, limit_per_category)]
    model, tokenizer = load_model(model_dir, device)
    single_result = evaluate_items(model, tokenizer, items, batch_size, max_new_tokens) if items else {}
    rows = single_result.get("rows", [])
    multi = multi_turn_rows(
        model,
        tokenizer,
        data_dir,
        categories,
        limit_per_category if multi_turn_limit_per_category is None else multi_turn_limit_per_category,
        batch_size,
        max_new_tokens,
        environments_dir,
        limits,
    )
    result = summarize(rows + multi)
    if single_result.get("prompts_too_long"):
        result["prompts_too_long"] = single_result["prompts_too_long"]
    if any(bfcl_category(c).multi_turn for c in categories):
        result["multi_turn_stopped"] = stop_reasons(multi)
    result["config"] = {
        "model_dir": str(model_dir),
        "data_dir": str(data_dir),
        "categories": list(categories),
        "limit_per_category": limit_per_category,
        "multi_turn_limit_per_category": multi_turn_limit_per_category,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
    }
    return result


def multi_turn_rows(
    model: Any,
    tokenizer: Any,
    data_dir: str | os.PathLike[str],
    categories: Sequence[str],
    limit_per_category: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    environments_dir: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
) -> list[dict[str, Any]]:
    """Scored rows of the multi-turn members of ``categories`` (the others are left out), their
    conversations run with an already loaded model against the environment classes in
    ``environments_dir`` (default: beside ``data_dir``); ``[]`` when there are none."""
    conversations = [
        item
        for category in categories
        if bfcl_category(category).multi_turn
        for item in load_multi_turn_category(data_dir, category, limit_per_category)
    ]
    if not conversations:
        return []
    source = environments_dir or environment_dir(data_dir)
    responses = run_conversations(
        model, tokenizer, conversations, source, max_new_tokens, batch_size, limits or Limits()
    )
    return score_conversations(conversations, responses, source)


def as_item(item: BfclItem | Mapping[str, Any], category: str | None = None) -> BfclItem:
    """A :class:`BfclItem` from an item row in BFCL's file shape (``function``, ``ground_truth``)."""
    if isinstance(item, BfclItem):
        return item
    cat = item.get("category") or category
    if not cat:
        raise ValueError(f"item {item.get('id')!r} has no category")
    return BfclItem(
        str(item["id"]),
        cat,
        item.get("question", []),
        item.get("function", item.get("functions", [])),
        item.get("ground_truth"),
    )


def score_items(
    items: Sequence[BfclItem | Mapping[str, Any]],
    answers: Mapping[str, list[dict]] | None,
    responses: Sequence[str | list | ParseResult] | Mapping[str, str | list | ParseResult],
) -> dict[str, Any]:
    """Score given responses (texts, decoded call lists or ParseResults) against BFCL-format items.

    ``answers`` maps item id -> possible answer and overrides the items' own ``ground_truth`` (pass
    ``None`` to use the items'). ``responses`` is aligned with ``items`` or keyed by item id; an item
    with no response is scored wrong (``missing_response``), never dropped.
    """
    parsed_items = [as_item(item) for item in items]
    if not isinstance(responses, Mapping) and len(responses) != len(parsed_items):
        raise ValueError(
            f"{len(responses)} responses for {len(parsed_items)} items; pass a dict keyed by id instead"
        )
    rows = []
    for index, item in enumerate(parsed_items):
        response = responses.get(item.id) if isinstance(responses, Mapping) else responses[index]
        truth = answers.get(item.id) if answers is not None else item.ground_truth
        rows.append(_score_one(item, truth, response))
    return summarize(rows)


def _score_one(item: BfclItem, truth: list[dict] | None, response: Any) -> dict[str, Any]:
    text = response if isinstance(response, str) else None
    if response is None:
        decoded = ParseResult([], "no response for this item")
        verdict = Verdict(False, "missing_response", ["no response for this item"])
    elif isinstance(response, Unanswered):
        decoded = ParseResult([], f"not generated: {response.reason}")
        verdict = Verdict(False, response.reason, [f"not generated: {response.reason}"])
    else:
        if isinstance(response, str):
            decoded = parse_tool_calls(response)
        elif isinstance(response, ParseResult):
            decoded = response
        else:
            decoded = ParseResult(list(response), None, "decoded")
        verdict = check(item.category, item.functions, decoded, truth)
    return {
        "id": item.id,
        "category": item.category,
        "text": text,
        "decoded": decoded.calls,
        "parse_error": decoded.error,
        "valid": verdict.valid,
        "error_type": verdict.error_type,
        "errors": verdict.errors,
    }


def _mean(parts: list[dict[str, Any]], how: str) -> float:
    if how == "weighted":
        return sum(p["accuracy"] * p["n"] for p in parts) / max(sum(p["n"] for p in parts), 1)
    return sum(p["accuracy"] for p in parts) / len(parts)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-category accuracy / counts / error types and BFCL's summary averages from item rows."""
    by_category: dict[str, dict[str, Any]] = {}
    for row in rows:
        stats = by_category.setdefault(row["category"], {"n": 0, "n_valid": 0, "error_types": Counter()})
        stats["n"] += 1
        stats["n_valid"] += bool(row["valid"])
        if not row["valid"]:
            stats["error_types"][row["error_type"]] += 1
    for stats in by_category.values():
        stats["accuracy"] = stats["n_valid"] / stats["n"]
        stats["error_types"] = dict(stats["error_types"].most_common())
    summary: dict[str, Any] = {}
    for group in groups_in_computation_order():
        subgroups, categories = group_members(group.name)
        parts = [summary.get(g) for g in subgroups] + [by_category.get(c) for c in categories]
        present = [part for part in parts if part]
        if present:
            summary[group.name] = {
                "accuracy": _mean(present, group.weighting),
                "n": sum(p["n"] for p in present),
                "complete": len(present) == len(parts) and all(summary[g]["complete"] for g in subgroups),
            }
    if by_category:
        summary[OVERALL.name] = {
            "accuracy": _mean(list(by_category.values()), OVERALL.weighting),
            "n": len(rows),
            "complete": True,
        }
    return {
        "n_items": len(rows),
        "n_valid": sum(bool(row["valid"]) for row in rows),
        "categories": dict(sorted(by_category.items())),
        "summary": summary,
        "rows": rows,
    }


def load_response_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Responses in BFCL's result format (JSON lines ``{"id", "result"}``) keyed by id."""
    responses = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                responses[str(row["id"])] = row["result"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: expected {{'id', 'result'}} JSON ({exc})") from None
    return responses
