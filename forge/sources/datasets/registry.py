"""Dataset formats by name: each maps one record to a :class:`forge.sources.datasets.common.Parsed`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forge.sources.datasets import glaive, openai_chat, sharegpt, toolace, toolbench, xlam
from forge.sources.datasets.common import Parsed

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
    """The parser of a format name (or alias); ValueError names the known formats."""
    key = ALIASES.get(fmt, fmt)
    if key not in FORMATS:
        raise ValueError(
            f"unknown dataset format {fmt!r}; known: {sorted(FORMATS)} (aliases {sorted(ALIASES)})"
        )
    return FORMATS[key]
