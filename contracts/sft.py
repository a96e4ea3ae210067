"""The SFT example row: one conversation per JSON line of ``<split>.jsonl``, written by the corpus
step (``forge.corpus.build.export_sft_dataset``) and read by supervised fine-tuning
(``training.sft``).

A row is ``{"id", "messages", "tools"}``: ``messages`` in the chat format of :mod:`contracts.chat`
(``role``, ``content``, optional ``tool_calls``), ``tools`` the tool documents shown to the model
(``[]`` when none). Lines are ``json.dumps`` with default separators, so a file's bytes depend on the
rows alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.io import atomic_write_text

SPLITS: tuple[str, ...] = ("train", "validation")


@dataclass(frozen=True)
class SftRow:
    """One SFT example; construction checks the shape, so a bad row fails where it is made."""

    id: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if not isinstance(self.messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in self.messages
        ):
            raise ValueError("'messages' must be a list of objects with a string 'role'")
        if not isinstance(self.tools, list) or not all(isinstance(t, dict) for t in self.tools):
            raise ValueError("'tools' must be a list of objects")

    @classmethod
    def from_json(cls, obj: Any) -> SftRow:
        """From a parsed line; ``tools`` missing or null means none. Raises ``ValueError``."""
        if not isinstance(obj, Mapping) or "messages" not in obj:
            raise ValueError("not an object with 'messages'")
        return cls(obj.get("id"), obj["messages"], obj.get("tools") or [])

    def to_json(self) -> dict[str, Any]:
        """The row as written: keys ``id``, ``messages``, ``tools`` in that order."""
        return {"id": self.id, "messages": self.messages, "tools": self.tools}

    def to_line(self) -> str:
        """One JSONL line, without the newline."""
        return json.dumps(self.to_json())

    @property
    def has_assistant_turn(self) -> bool:
        """Whether any message is the assistant's (a row without one supervises nothing)."""
        return any(m.get("role") == "assistant" for m in self.messages)


def split_path(out_dir: str | os.PathLike[str], split: str) -> Path:
    """``<out_dir>/<split>.jsonl``."""
    if split not in SPLITS:
        raise ValueError(f"unknown SFT split {split!r}; known: {SPLITS}")
    return Path(out_dir) / f"{split}.jsonl"


def write_sft_jsonl(path: str | os.PathLike[str], rows: Iterable[SftRow]) -> int:
    """Write ``rows`` one per line (atomically); returns how many."""
    lines = [row.to_line() for row in rows]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def read_sft_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, SftRow]]:
    """``(line number, row)`` for every non-blank line; a bad line raises naming ``path:line``."""
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = SftRow.from_json(json.loads(line))
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{lineno}: not an SFT row with 'messages' ({e})") from e
            yield lineno, row
