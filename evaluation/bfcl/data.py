"""BFCL's official data: fetch the ``bfcl-eval`` wheel, unpack its data files, load single-turn items.

The Berkeley Function-Calling Leaderboard ships its questions and possible answers inside the
``bfcl-eval`` wheel (``bfcl_eval/data/BFCL_v4_<category>.json`` and ``possible_answer/`` beside it,
JSON lines). We download the wheel with pip (never install it: it pins many API clients) and read the
files with :mod:`zipfile`. Grain of :func:`load_category`: one item per question id.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

DEFAULT_SPEC = "bfcl-eval==2026.3.23"
DATA_PREFIX = "bfcl_eval/data/"

#: Non-live AST categories (Python unless the name says Java / JavaScript).
NON_LIVE_AST = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
)
#: Live (user-contributed) AST categories.
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
#: Categories scored only on whether a call was made; they have no possible-answer file.
RELEVANCE = ("irrelevance", "live_irrelevance", "live_relevance")
SUPPORTED_CATEGORIES = NON_LIVE_AST + LIVE_AST + RELEVANCE

_HINTS = {
    "java": " Note that the provided function is in Java 8 SDK syntax.",
    "javascript": " Note that the provided function is in JavaScript syntax.",
    "python": " Note that the provided function is in Python 3 syntax.",
}


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

    def prompt_functions(self) -> list[dict[str, Any]]:
        """Function documents as BFCL shows them to a model (language hint added; Java/JS types as strings).

        The checker keeps using :attr:`functions`; only the prompt sees this rewritten copy.
        """
        return prompt_functions(self.functions, self.category)


def _language(category: str) -> str:
    if "javascript" in category:
        return "javascript"
    return "java" if "java" in category else "python"


def prompt_functions(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """BFCL's prompt-side rewrite of function documents for ``category`` (a deep copy).

    Every description gets a language hint. For Java and JavaScript each parameter becomes a
    ``string`` whose description names the original type, because the model must answer with a
    literal in that language's syntax (the checker converts it back).
    """
    language = _language(category)
    docs = copy.deepcopy(functions)
    for doc in docs:
        doc["description"] = doc.get("description", "") + _HINTS[language]
        if language == "python":
            continue
        name = "Java" if language == "java" else "JavaScript"
        list_types = ("ArrayList", "Array") if language == "java" else ("array",)
        for spec in (doc.get("parameters") or {}).get("properties", {}).values():
            kind = spec.get("type")
            if kind == "any":
                spec["description"] = (
                    spec.get("description", "")
                    + f" This parameter can be of any type of {name} object in string representation."
                )
            else:
                spec["description"] = (
                    spec.get("description", "")
                    + f" This is {name} {kind} type parameter in string representation."
                )
            if kind in list_types and "items" in spec:
                spec["description"] += (
                    f" The list elements are of type {spec['items'].get('type')}; they are not in string representation."
                )
                del spec["items"]
            if language == "javascript" and kind == "dict" and "properties" in spec:
                spec["description"] += (
                    " The dictionary entries have the following schema; they are not in string representation. "
                    + json.dumps(spec["properties"])
                )
                del spec["properties"]
            spec["type"] = "string"
    return docs


# ------------------------------------------------------------------------------- wheel + files
def _wheel_glob(spec: str) -> str:
    name, _, version = spec.partition("==")
    return f"{name.strip().replace('-', '_')}-{version.strip() or '*'}-*.whl"


def download_bfcl_wheel(
    cache_dir: str | os.PathLike[str],
    spec: str = DEFAULT_SPEC,
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> Path:
    """Path of the ``bfcl-eval`` wheel in ``cache_dir``, downloading it with pip only if absent.

    Runs ``python -m pip download --no-deps <spec> -d <cache_dir>``: the wheel is fetched, never
    installed. ``runner`` is the subprocess function (tests pass a fake).
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(_wheel_glob(spec)))
    if found:
        return found[-1]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        spec,
        "-d",
        str(cache),
    ]
    completed = runner(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"pip download {spec} failed ({completed.returncode}): {(completed.stderr or '')[-2000:]}"
        )
    found = sorted(cache.glob(_wheel_glob(spec)))
    if not found:
        raise RuntimeError(
            f"pip download {spec} succeeded but no wheel matching {_wheel_glob(spec)} is in {cache}"
        )
    return found[-1]


def extract_bfcl_data(wheel: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Unpack ``bfcl_eval/data/**`` from the wheel into ``out_dir``; returns ``out_dir/bfcl_eval/data``.

    Atomic: files go to a temporary directory beside the target, which is renamed into place only
    when every member is written, so a killed run never leaves a half-extracted data directory. An
    existing complete extraction (marker file present) is reused.
    """
    target = Path(out_dir) / "bfcl_eval" / "data"
    marker = target / ".extracted"
    if marker.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bfcl-data-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [
                name for name in archive.namelist() if name.startswith(DATA_PREFIX) and not name.endswith("/")
            ]
            if not members:
                raise ValueError(f"{wheel} has no {DATA_PREFIX} files; is it a bfcl-eval wheel?")
            for name in members:
                relative = PurePosixPath(name[len(DATA_PREFIX) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ValueError(f"unsafe path in wheel: {name!r}")
                destination = staging.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        (staging / ".extracted").write_text(f"{Path(wheel).name}\n{len(members)} files\n")
        if target.exists():  # an earlier run died after a partial rename; replace it
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def load_category(
    data_dir: str | os.PathLike[str], category: str, limit: int | None = None
) -> list[BfclItem]:
    """Items of one category, in file order (the first ``limit`` when given), answers joined by id."""
    if category not in SUPPORTED_CATEGORIES:
        raise ValueError(
            f"unsupported BFCL category {category!r}; supported: {', '.join(SUPPORTED_CATEGORIES)}"
        )
    data = Path(data_dir)
    questions = _read_json_lines(data / f"BFCL_v4_{category}.json")
    if limit is not None:
        questions = questions[: max(limit, 0)]
    answers: dict[str, Any] = {}
    if category not in RELEVANCE:
        answer_path = data / "possible_answer" / f"BFCL_v4_{category}.json"
        answers = {row["id"]: row["ground_truth"] for row in _read_json_lines(answer_path)}
    items = []
    for row in questions:
        item_id = row.get("id")
        if not item_id or "question" not in row or "function" not in row:
            raise ValueError(f"{category}: malformed item (needs id, question, function): {str(row)[:200]}")
        if category not in RELEVANCE and item_id not in answers:
            raise ValueError(f"{category}: item {item_id!r} has no possible answer")
        items.append(BfclItem(item_id, category, row["question"], row["function"], answers.get(item_id)))
    return items
