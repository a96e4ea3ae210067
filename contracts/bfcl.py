"""What a BFCL category means, in one table, and the reader of BFCL's files.

Every BFCL v4 category (and the unseen-API benchmark's own ``simple``) is one :class:`Category`
row: its **kind** (what a correct answer is: one call, one call picked among several functions,
several calls in any order, no call, any call, a multi-turn conversation whose calls are executed
against BFCL's environment classes, or a web-search / memory task this project does not score), the
**language** its arguments are written in, whether it is **live** (user-contributed), and the
**summary group** its accuracy is averaged into. The checker dispatches on the kind, the
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

import copy
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
    def multi_turn(self) -> bool:
        """Whether items are conversations over several user turns, executed against environments."""
        return self.kind == "multi_turn"

    @property
    def has_answers(self) -> bool:
        """Whether items come with a possible answer (a ``possible_answer/`` file for BFCL)."""
        return self.kind in AST_KINDS or self.kind == "multi_turn"


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
    Category("multi_turn_base", "multi_turn", "python", False, "multi_turn"),
    Category("multi_turn_miss_func", "multi_turn", "python", False, "multi_turn"),
    Category("multi_turn_miss_param", "multi_turn", "python", False, "multi_turn"),
    Category("multi_turn_long_context", "multi_turn", "python", False, "multi_turn"),
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
    SummaryGroup("multi_turn", "unweighted", headline=True),
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
#: BFCL's multi-turn categories, executed against the official environment classes and scored by
#: state and execution response (``evaluation.bfcl.multi_turn``), in table order.
MULTI_TURN_CATEGORIES: tuple[str, ...] = tuple(c.name for c in CATEGORIES if c.kind == "multi_turn")
#: Every BFCL category this project scores: single-turn first, then multi-turn.
SCORED_CATEGORIES: tuple[str, ...] = SUPPORTED_CATEGORIES + MULTI_TURN_CATEGORIES


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


# ------------------------------------------------------------------------ multi-turn files
#: BFCL's environment classes of the multi-turn categories: class name -> (module file stem under
#: ``bfcl_eval/eval_checker/multi_turn_eval/func_source_code/``, function-document file under
#: ``multi_turn_func_doc/``). Web search and memory classes are left out (they need the internet or
#: hosted services).
MULTI_TURN_CLASSES: dict[str, tuple[str, str]] = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
#: Classes that take no scenario (BFCL's ``STATELESS_CLASSES``).
STATELESS_CLASSES: frozenset[str] = frozenset({"MathAPI"})
#: The user message BFCL sends at a turn where held-out functions come back (function-calling mode).
ADDED_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"
#: Steps (model replies) per turn before BFCL force-quits the conversation.
MAX_STEPS_PER_TURN = 20


@dataclass(frozen=True)
class MultiTurnItem:
    """One multi-turn BFCL conversation (grain: one question id).

    ``turns[t]`` holds the user messages of turn ``t`` (empty at a turn where held-out functions come
    back); ``functions`` are the documents offered from the start; ``held_out[t]`` the documents added
    at turn ``t`` (``multi_turn_miss_func``); ``ground_truth[t]`` the calls of turn ``t`` as BFCL writes
    them (``"cd(folder='document')"``; an empty turn means no call is right there).
    """

    id: str
    category: str
    turns: list[list[dict[str, Any]]]
    initial_config: dict[str, Any]
    involved_classes: list[str]
    functions: list[dict[str, Any]]
    held_out: dict[int, list[dict[str, Any]]]
    ground_truth: list[list[str]] | None = None

    @property
    def long_context(self) -> bool:
        """Whether the environments load BFCL's long-context scenario extras (by category row)."""
        return self.category == "multi_turn_long_context"

    def entry(self) -> dict[str, Any]:
        """What the environments need: id, initial configuration, involved classes, long context."""
        return {
            "id": self.id,
            "initial_config": self.initial_config,
            "involved_classes": self.involved_classes,
            "long_context": self.long_context,
        }


def function_doc_file(data_dir: str | os.PathLike[str], class_name: str) -> Path:
    """``multi_turn_func_doc/<file>.json`` of an environment class."""
    if class_name not in MULTI_TURN_CLASSES:
        raise ValueError(f"unknown multi-turn class {class_name!r}; known: {', '.join(MULTI_TURN_CLASSES)}")
    return Path(data_dir) / "multi_turn_func_doc" / MULTI_TURN_CLASSES[class_name][1]


def load_multi_turn_category(
    data_dir: str | os.PathLike[str], name: str, limit: int | None = None
) -> list[MultiTurnItem]:
    """Items of one multi-turn category in file order (the first ``limit``), answers joined by id.

    Function documents are the involved classes' files in ``multi_turn_func_doc/``, in class order;
    a ``missed_function`` entry moves the named documents from the start to the turn that adds them
    back, as BFCL's loader does. A malformed item raises ``ValueError`` naming it.
    """
    if name not in MULTI_TURN_CATEGORIES:
        raise ValueError(
            f"not a multi-turn BFCL category: {name!r}; known: {', '.join(MULTI_TURN_CATEGORIES)}"
        )
    questions = read_jsonl(question_file(data_dir, name))
    if limit is not None:
        questions = questions[: max(limit, 0)]
    answers = {row["id"]: row["ground_truth"] for row in read_jsonl(answer_file(data_dir, name))}
    docs: dict[str, list[dict[str, Any]]] = {}
    items = []
    for row in questions:
        item_id = row.get("id")
        classes = row.get("involved_classes")
        if not item_id or not isinstance(row.get("question"), list) or not isinstance(classes, list):
            raise ValueError(
                f"{name}: malformed item (needs id, question, involved_classes): {str(row)[:200]}"
            )
        if item_id not in answers:
            raise ValueError(f"{name}: item {item_id!r} has no possible answer")
        functions: list[dict[str, Any]] = []
        for class_name in classes:
            if class_name not in docs:
                docs[class_name] = read_jsonl(function_doc_file(data_dir, class_name))
            functions.extend(copy.deepcopy(docs[class_name]))
        held_out: dict[int, list[dict[str, Any]]] = {}
        for turn, names in (row.get("missed_function") or {}).items():
            for missed in names:
                index = next((i for i, doc in enumerate(functions) if doc.get("name") == missed), None)
                if index is not None:
                    held_out.setdefault(int(turn), []).append(functions.pop(index))
        items.append(
            MultiTurnItem(
                id=item_id,
                category=name,
                turns=row["question"],
                initial_config=row.get("initial_config") or {},
                involved_classes=classes,
                functions=functions,
                held_out=held_out,
                ground_truth=answers[item_id],
            )
        )
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
