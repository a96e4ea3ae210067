"""Versioned dataset card for the unseen-API benchmark (BFCL format, held-out providers only): the one
card of the benchmark.

:func:`write_card` reads a benchmark directory in the layout of :mod:`contracts.bfcl`
(``items.jsonl``, ``possible_answers.jsonl``), derives a content version (sha256 of both files),
checks that every ground truth passes our BFCL checker (a benchmark whose own answers fail is
broken), and writes ``CARD.md`` (YAML front matter + tables) and ``card.json`` atomically. The
corpus step that builds the benchmark (``forge.corpus.build.build_unseen_benchmark``) and
``bench/unseen_card.py`` (built straight from the OpenAPI directory tarball) both end here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from contracts.bfcl import UNSEEN_ANSWERS_FILE, UNSEEN_ITEMS_FILE, read_unseen_benchmark
from contracts.io import atomic_write_json, atomic_write_text
from evaluation.bfcl.runner import score_items

CARD_FORMAT = "hephaestus-unseen-card-v1"


def content_version(bench_dir: Path) -> str:
    """``sha256:<12 hex>`` over items and answers: any change to the data changes the version."""
    digest = hashlib.sha256()
    for name in (UNSEEN_ITEMS_FILE, UNSEEN_ANSWERS_FILE):
        digest.update(name.encode() + b"\0" + (bench_dir / name).read_bytes())
    return "sha256:" + digest.hexdigest()[:12]


def ground_truth_calls(truth: list[dict[str, dict[str, list]]]) -> list[dict[str, dict[str, Any]]]:
    """One decoded answer per possible answer: the first allowed value of each parameter, omitting
    parameters whose first allowed value is ``""`` (BFCL's "may be left out")."""
    calls = []
    for call in truth:
        (name, params), = call.items()  # fmt: skip
        calls.append({name: {k: v[0] for k, v in params.items() if v and v[0] != ""}})
    return calls


def card_facts(
    bench_dir: Path, providers: list[str] | None = None, n_operations: int | None = None
) -> dict[str, Any]:
    """Counts, version and the ground-truth self-check of a built benchmark."""
    items, answers = read_unseen_benchmark(bench_dir)
    responses = {i["id"]: ground_truth_calls(answers[i["id"]]) if i["id"] in answers else [] for i in items}
    scored = score_items(items, answers, responses)
    targets = Counter(next(iter(c)) for truth in answers.values() for c in truth)
    return {
        "format": CARD_FORMAT,
        "version": content_version(bench_dir),
        "n_items": len(items),
        "by_category": dict(sorted(Counter(i["category"] for i in items).items())),
        "n_answers": len(answers),
        "n_distinct_target_functions": len(targets),
        "max_items_per_target_function": max(targets.values(), default=0),
        "n_distinct_questions": len({i["question"][0][0]["content"] for i in items}),
        "tools_per_item": dict(sorted(Counter(len(i["function"]) for i in items).items())),
        "providers": providers,
        "n_operations": n_operations,
        "ground_truth_self_check": {"n_valid": scored["n_valid"], "n_items": scored["n_items"]},
    }


def render_card(facts: dict[str, Any]) -> str:
    """Markdown card: YAML front matter (machine-readable) and the human summary."""
    front = "\n".join(f"{k}: {json.dumps(v)}" for k, v in facts.items())
    rows = "\n".join(f"| {k} | {v} |" for k, v in facts["by_category"].items())
    check = facts["ground_truth_self_check"]
    return f"""---
{front}
---
# Unseen-API benchmark ({facts["version"]})

The paper's "new APIs" test: items in BFCL's format (function documents, question, possible
answers) built only from the operations of held-out providers, which the synthesis step skips, so
no training table contains them (the decontamination table shows the overlap: zero by construction).
Scored by the same AST checker as BFCL (`evaluation.bfcl.checker`), categories `simple`, `multiple`,
`parallel` (order-free) and `irrelevance` (correct = no call).

| category | items |
|---|---|
{rows}

- providers: {", ".join(facts["providers"] or ["(not recorded)"])}; operations: {facts["n_operations"]}
- distinct target functions: {facts["n_distinct_target_functions"]} (at most {facts["max_items_per_target_function"]} items each)
- distinct questions: {facts["n_distinct_questions"]} of {facts["n_items"]}
- ground truth through the checker: {check["n_valid"]} / {check["n_items"]} valid

Files: `items.jsonl` (`id`, `category`, `question`, `function`) and `possible_answers.jsonl`
(`id`, `ground_truth`; none for irrelevance items). The version is a hash of both files.
"""


def write_card(
    bench_dir: Path, providers: list[str] | None = None, n_operations: int | None = None
) -> dict[str, Any]:
    """Write ``CARD.md`` and ``card.json`` into ``bench_dir``; return the facts."""
    facts = card_facts(bench_dir, providers, n_operations)
    atomic_write_text(bench_dir / "CARD.md", render_card(facts))
    atomic_write_json(bench_dir / "card.json", facts)
    return facts
