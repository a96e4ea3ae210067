"""The HumanEval problems file: one JSON object per line (``.jsonl`` or ``.jsonl.gz``).

Read by the evaluation (pass@1) and by decontamination (prompts and canonical solutions are
benchmark text the corpus must not hold), so its reader lives here, below both. Grain: one
problem per ``task_id`` with ``prompt``, ``test``, ``entry_point`` and, in the official file,
``canonical_solution``.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

#: keys every problem has (``canonical_solution`` is in the official file, optional here)
REQUIRED_KEYS = ("task_id", "prompt", "test", "entry_point")


def read_problems(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """Problems in file order (the first ``limit`` when given). A line that is not JSON, or a
    problem missing a required key, is a ``ValueError`` naming the file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    problems = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            missing = [key for key in REQUIRED_KEYS if key not in row]
            if missing:
                raise ValueError(f"{path}:{number}: problem lacks {missing}")
            problems.append(row)
            if limit is not None and len(problems) >= limit:
                break
    return problems
