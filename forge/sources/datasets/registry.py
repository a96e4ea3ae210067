"""Dataset formats by name: each maps one record to a :class:`forge.sources.datasets.common.Parsed`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from forge.sources.datasets import glaive, openai_chat, sharegpt, toolace, toolbench, xlam
from forge.sources.datasets.common import Parsed, RowError

Parser = Callable[[Any, str], Parsed]

FORMATS: dict[str, Parser] = {
    "xlam": xlam.parse,  # APIGen / xLAM: query, tools, answers
    "toolace": toolace.parse,  # ToolACE: system prompt with tools, bracketed Python calls
    "glaive": glaive.parse,  # Glaive function-calling v2: system + chat text
    "toolbench": toolbench.parse,  # ToolBench / ToolLLaMA: Thought / Action / Action Input
    "openai": openai_chat.parse,  # OpenAI chat: messages + tools + tool_calls
    "sharegpt": sharegpt.parse,  # ShareGPT conversations with function_call / observation
}
ALIASES = {"apigen": "xlam", "glaive_v2": "glaive", "toolllama": "toolbench", "openai_chat": "openai"}


def parser_for(fmt: str) -> Parser:
    """The parser of a format name (or alias); ValueError names the known formats.

    The parser is guarded: a record whose fields have types its format never uses (a number where
    text belongs, a list for an object) raises :class:`RowError` ``malformed_record`` naming the
    error, like every other bad row, instead of whatever Python raised deep inside the parser."""
    key = ALIASES.get(fmt, fmt)
    if key not in FORMATS:
        raise ValueError(
            f"unknown dataset format {fmt!r}; known: {sorted(FORMATS)} (aliases {sorted(ALIASES)})"
        )
    return functools.partial(_guarded, FORMATS[key])


def _guarded(parse: Parser, record: Any, row_key: str) -> Parsed:
    try:
        return parse(record, row_key)
    except RowError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as exc:
        raise RowError("malformed_record", f"{type(exc).__name__}: {str(exc)[:200]}") from exc
