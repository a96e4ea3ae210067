"""What a BFCL category means, in one table, and the reader of BFCL's files.

Every BFCL v4 category (and the unseen-API benchmark's own ``simple``) is one :class:`Category`
row: its **kind** (what a correct answer is: one call, one call picked among several functions,
several calls in any order, no call, any call, or a multi-turn / agentic task this project does not
score), the **language** its arguments are written in, whether it is **live** (user-contributed),
and the **summary group** its accuracy is averaged into. The checker dispatches on the kind, the
runner builds its summary from the groups, and the scorecard prints the groups in table order;
nothing reads meaning out of a category's name.

Summary groups follow BFCL's leaderboard code (``eval_checker/eval_runner_helper.py``): a group
averages its member categories and its subgroups, unweighted (each member counts once) or
weighted by item count; ``overall_mean`` (ours) averages every category that was run.

Files (grain: one item per question id): ``BFCL_v4_<category>.json`` holds the questions and
``possible_answer/BFCL_v4_<category>.json`` the answers, both JSON lines; the unseen-API benchmark
keeps the same item and answer shapes in ``items.jsonl`` and ``possible_answers.jsonl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from contracts.io import read_jsonl, write_jsonl

Kind = Literal[
    "simple", "multiple", "parallel", "parallel_multiple", "irrelevance", "relevance",
    "multi_turn", "web_search", "memory",
]  # fmt: skip
Language = Literal["python", "java", "javascript"]

#: Kinds with a possible answer, scored by comparing calls (BFCL's AST categories).
AST_KINDS: frozenset[str] = frozenset({"simple", "multiple", "parallel", "parallel_multiple"})
#: Kinds scored only on whether a call was made: ``irrelevance`` wants none, ``relevance`` any.
RELEVANCE_KINDS: frozenset[str] = frozenset({"irrelevance", "relevance"})
#: Kinds whose calls match the answers in any order.
ORDER_FREE_KINDS: frozenset[str] = frozenset({"parallel", "parallel_multiple"})


@dataclass(frozen=True)
class Category:
    """One row of the category table."""

    name: str
    kind: Kind
    language: Language
    live: bool
    group: str | None  # summary group averaged into; None: only in overall_mean
    benchmark: Literal["bfcl", "unseen"] = "bfcl"

    @property
    def scored(self) -> bool:
        """Whether this project's checker scores it (single-turn AST or relevance)."""
        return self.kind in AST_KINDS or self.kind in RELEVANCE_KINDS

    @property
    def has_answers(self) -> bool:
        """Whether items come with a possible answer (a ``possible_answer/`` file for BFCL)."""
        return self.kind in AST_KINDS


@dataclass(frozen=True)
class SummaryGroup:
    """A summary number: the mean over its member categories and subgroups."""

    name: str
    weighting: Literal["unweighted", "weighted"]  # weighted: by item count
    parent: str | None = None  # the group this one is itself a member of
    headline: bool = False  # shown among the scorecard's headline numbers


# In the order BFCL's scoring runs them; the order of SUPPORTED_CATEGORIES and of group members.
CATEGORIES: tuple[Category, ...] = (
    Category("simple_python", "simple", "python", False, "non_live_simple"),
    Category("simple_java", "simple", "java", False, "non_live_simple"),
    Category("simple_javascript", "simple", "javascript", False, "non_live_simple"),
    Category("multiple", "multiple", "python", False, "non_live_ast"),
    Category("parallel", "parallel", "python", False, "non_live_ast"),
    Category("parallel_multiple", "parallel_multiple", "python", False, "non_live_ast"),
    Category("live_simple", "simple", "python", True, "live_ast"),
    Category("live_multiple", "multiple", "python", True, "live_ast"),
    Category("live_parallel", "parallel", "python", True, "live_ast"),
    Category("live_parallel_multiple", "parallel_multiple", "python", True, "live_ast"),
    Category("irrelevance", "irrelevance", "python", False, "irrelevance"),
    Category("live_irrelevance", "irrelevance", "python", True, "irrelevance"),
    Category("live_relevance", "relevance", "python", True, "relevance"),
    Category("multi_turn_base", "multi_turn", "python", False, None),
    Category("multi_turn_miss_func", "multi_turn", "python", False, None),
    Category("multi_turn_miss_param", "multi_turn", "python", False, None),
    Category("multi_turn_long_context", "multi_turn", "python", False, None),
    Category("web_search_base", "web_search", "python", False, None),
    Category("web_search_no_snippet", "web_search", "python", False, None),
    Category("memory_kv", "memory", "python", False, None),
    Category("memory_vector", "memory", "python", False, None),
    Category("memory_rec_sum", "memory", "python", False, None),
    # The unseen-API benchmark's single-call items (its other categories are BFCL's own names);
    # outside BFCL's groups, so its summary never passes for a BFCL number.
    Category("simple", "simple", "python", False, None, benchmark="unseen"),
)

SUMMARY_GROUPS: tuple[SummaryGroup, ...] = (
    SummaryGroup("non_live_ast", "unweighted", headline=True),
    SummaryGroup("non_live_simple", "unweighted", parent="non_live_ast"),
    SummaryGroup("live_ast", "weighted", headline=True),
    SummaryGroup("irrelevance", "unweighted"),
    SummaryGroup("relevance", "unweighted"),
)
#: Unweighted mean over every category run; printed after the groups.
OVERALL = SummaryGroup("overall_mean", "unweighted", headline=True)
#: The order summary numbers are shown in (scorecard).
SUMMARY_ORDER: tuple[str, ...] = (*(g.name for g in SUMMARY_GROUPS), OVERALL.name)

_BY_NAME = {c.name: c for c in CATEGORIES}
_GROUPS = {g.name: g for g in SUMMARY_GROUPS}

#: BFCL categories the reader and checker handle (single-turn), in table order.
SUPPORTED_CATEGORIES: tuple[str, ...] = tuple(
    c.name for c in CATEGORIES if c.benchmark == "bfcl" and c.scored
)


def category(name: str) -> Category:
    """The table row of ``name``; an unknown name is an error that lists the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown BFCL category {name!r}; known: {', '.join(_BY_NAME)}") from None


def group_members(group: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(subgroups, categories) a summary group averages, each in table order; subgroups come first
    in the mean. Group and category names may coincide (``irrelevance`` is both), hence two lists."""
    if group not in _GROUPS:
        raise ValueError(f"unknown summary group {group!r}; known: {', '.join(_GROUPS)}")
    subgroups = tuple(g.name for g in SUMMARY_GROUPS if g.parent == group)
    return subgroups, tuple(c.name for c in CATEGORIES if c.group == group)


def groups_in_computation_order() -> tuple[SummaryGroup, ...]:
    """Summary groups with every subgroup before the group that averages it (table order otherwise)."""

    def height(group: SummaryGroup) -> int:
        return max((1 + height(g) for g in SUMMARY_GROUPS if g.parent == group.name), default=0)

    return tuple(sorted(SUMMARY_GROUPS, key=height))


# ------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class BfclItem:
    """One single-turn BFCL question with its function documents and (for AST categories) answer."""

    id: str
    category: str
    question: list[list[dict[str, Any]]]  # turns -> messages; single-turn categories have one turn
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages of the (only) turn, as given to the model."""
        return self.question[0] if self.question else []


def question_file(data_dir: str | os.PathLike[str], name: str) -> Path:
    """``BFCL_v4_<category>.json`` under ``data_dir``."""
    return Path(data_dir) / f"BFCL_v4_{name}.json"


def answer_file(data_dir: str | os.PathLike[str], name: str) -> Path:
    """``possible_answer/BFCL_v4_<category>.json`` under ``data_dir``."""
    return Path(data_dir) / "possible_answer" / f"BFCL_v4_{name}.json"


def load_category(data_dir: str | os.PathLike[str], name: str, limit: int | None = None) -> list[BfclItem]:
    """Items of one category, in file order (the first ``limit`` when given), answers joined by id."""
    if name not in SUPPORTED_CATEGORIES:
        raise ValueError(f"unsupported BFCL category {name!r}; supported: {', '.join(SUPPORTED_CATEGORIES)}")
    questions = read_jsonl(question_file(data_dir, name))
    if limit is not None:
        questions = questions[: max(limit, 0)]
    with_answers = category(name).has_answers
    answers: dict[str, Any] = {}
    if with_answers:
        answers = {row["id"]: row["ground_truth"] for row in read_jsonl(answer_file(data_dir, name))}
    items = []
    for row in questions:
        item_id = row.get("id")
        if not item_id or "question" not in row or "function" not in row:
            raise ValueError(f"{name}: malformed item (needs id, question, function): {str(row)[:200]}")
        if with_answers and item_id not in answers:
            raise ValueError(f"{name}: item {item_id!r} has no possible answer")
        items.append(BfclItem(item_id, name, row["question"], row["function"], answers.get(item_id)))
    return items


# ------------------------------------------------------------------- unseen-API benchmark files
UNSEEN_ITEMS_FILE = "items.jsonl"  # {"id", "category", "question", "function"} per line
UNSEEN_ANSWERS_FILE = "possible_answers.jsonl"  # {"id", "ground_truth"} per line; none for irrelevance


def write_unseen_benchmark(out_dir: str | os.PathLike[str], items: list[dict], answers: list[dict]) -> None:
    """Write the items and their possible answers (each file atomically)."""
    out = Path(out_dir)
    write_jsonl(out / UNSEEN_ITEMS_FILE, items)
    write_jsonl(out / UNSEEN_ANSWERS_FILE, answers)


def read_unseen_benchmark(bench_dir: str | os.PathLike[str]) -> tuple[list[dict], dict[str, list[dict]]]:
    """(items in file order, possible answer by item id)."""
    bench = Path(bench_dir)
    answers = {a["id"]: a["ground_truth"] for a in read_jsonl(bench / UNSEEN_ANSWERS_FILE)}
    return read_jsonl(bench / UNSEEN_ITEMS_FILE), answers
