"""Chat-template rendering that formats each tool set once, however many rounds reuse it.

A multi-turn conversation's prompt carries its tools' schemas every round -- most of its text in
BFCL's multi-turn categories (thousands of tokens of function docs). ``apply_chat_template`` copies
every schema into plain data and the template's ``tojson`` serializes it again on every render: over
BFCL's 800 conversations that was about half of the host's rendering time (py-spy, CPU). The
renderer below renders a prompt with small *stand-in* tools instead and splices the real tools' text
in, learned once per tool set:

1. The first prompt with a tool set is rendered twice, with the real tools (``T``) and with stand-ins
   (``S``: one per tool, same ``type``, a marker name, no description or parameters). The two texts
   differ only where the template wrote the tools; their common head and tail leave that span,
   ``X_T`` in one and ``X_S`` in the other.
2. Later prompts with the same tool set are rendered with the stand-ins; where ``X_S`` occurs exactly
   once it is replaced by ``X_T``. Elsewhere (a template that writes the tools in several places, or
   differently as the messages change) the prompt is rendered whole, counted.

Exactness is checked, not assumed: the first :attr:`ToolRenderer.VERIFY` spliced prompts are also
rendered whole and compared; on any difference the renderer logs why and renders whole prompts from
then on. A tool set is keyed by the identity of its list and of its dicts (the caller does not mutate
them in place: :mod:`evaluation.bfcl.multi_turn` builds a new list when a held-out function comes
back); the renderer holds them, so an identity is never reused while cached.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: marks the stand-in tools' names (ASCII, so a template's JSON writes it as it is, escaped or not)
MARK = "__forge_stand_in_"


def render_prompt(tokenizer: Any, prompt: Any, generation_prompt: bool = True) -> str:
    """Prompt text for one input: strings pass through, conversations go through the chat template
    (with the assistant's generation prompt after them unless ``generation_prompt`` is false)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # bare message list
        prompt = {"messages": prompt}
    tools = prompt.get("tools") or None
    return tokenizer.apply_chat_template(
        prompt["messages"], tools=tools, add_generation_prompt=generation_prompt, tokenize=False
    )


def stand_ins(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One small tool per tool of ``tools``, shaped like it (OpenAI's ``{"type", "function"}`` wrapper or
    a bare function), with a marker name (its index) and nothing to serialize."""
    out = []
    for i, tool in enumerate(tools):
        function = {
            "name": f"{MARK}{i}",
            "description": "",
            "parameters": {"type": "object", "properties": {}},
        }
        out.append(
            {"type": tool.get("type", "function"), "function": function} if "function" in tool else function
        )
    return out


def differing_span(a: str, b: str) -> tuple[int, int, int]:
    """``(head, tail_a, tail_b)``: ``a[head:tail_a]`` and ``b[head:tail_b]`` are where ``a`` and ``b``
    differ -- their longest common head and, after it, their longest common tail removed."""
    head = len(os.path.commonprefix([a, b]))
    limit = min(len(a), len(b)) - head
    tail = len(os.path.commonprefix([a[::-1][:limit], b[::-1][:limit]]))
    return head, len(a) - tail, len(b) - tail


class ToolRenderer:
    """``render(prompt)`` -> ``render_prompt(tokenizer, prompt)``, each tool set's text formatted once."""

    #: spliced prompts also rendered whole and compared (a few: each costs a whole render)
    VERIFY = 4

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.enabled = True
        self.verified = 0
        #: tool-set key -> (its tools, held; the stand-ins' span, the real tools' span), or None where
        #: the template's text for the tools could not be told apart (those prompts render whole)
        self._spans: dict[str, tuple[list[Any], tuple[str, str] | None]] = {}
        #: a tool list's identity (the list's and its dicts', held so they stay unique) -> its content key
        self._keys: dict[tuple[int, ...], tuple[list[Any], str]] = {}
        #: prompts ``spliced`` (stand-in render + tools' text), ``whole`` (rendered with the real tools:
        #: strings, no tools, a tool set's first prompt, a span not found once) and ``learned`` tool sets
        self.stats: Counter[str] = Counter()

    def render(self, prompt: Any, generation_prompt: bool = True) -> str:
        tools = None if isinstance(prompt, str | list) else prompt.get("tools")
        if not tools or not self.enabled or not all(isinstance(t, dict) for t in tools):
            self.stats["whole"] += 1
            return render_prompt(self.tokenizer, prompt, generation_prompt)
        key = self._key(tools)
        entry = self._spans.get(key)
        if entry is None:
            if not generation_prompt:  # spans are learned from prompts as generation renders them
                self.stats["whole"] += 1
                return render_prompt(self.tokenizer, prompt, False)
            return self._learn(key, prompt, tools)
        span = entry[1]
        if span is not None:
            cheap = render_prompt(self.tokenizer, {**prompt, "tools": stand_ins(tools)}, generation_prompt)
            if cheap.count(span[0]) == 1:
                text = cheap.replace(span[0], span[1])
                self.stats["spliced"] += 1
                return self._verify(prompt, text, generation_prompt) if self.verified < self.VERIFY else text
        self.stats["whole"] += 1
        return render_prompt(self.tokenizer, prompt, generation_prompt)

    def _key(self, tools: list[Any]) -> str:
        """A tool set's content (canonical JSON), computed once per list and dicts held."""
        ident = (id(tools), *map(id, tools))
        known = self._keys.get(ident)
        if known is None:
            known = self._keys[ident] = (tools, json.dumps(tools, sort_keys=True, default=repr))
        return known[1]

    def _learn(self, key: str, prompt: Any, tools: list[Any]) -> str:
        text = render_prompt(self.tokenizer, prompt)
        cheap = render_prompt(self.tokenizer, {**prompt, "tools": stand_ins(tools)})
        head, end, cheap_end = differing_span(text, cheap)
        span = (cheap[head:cheap_end], text[head:end])
        self._spans[key] = (tools, span if MARK in span[0] else None)
        self.stats["learned"] += 1
        self.stats["whole"] += 1
        return text

    def _verify(self, prompt: Any, text: str, generation_prompt: bool = True) -> str:
        whole = render_prompt(self.tokenizer, prompt, generation_prompt)
        if whole == text:
            self.verified += 1
            return text
        log.warning(
            "splicing the tools' text changed a prompt (%d vs %d characters): rendering whole prompts",
            len(text), len(whole),
        )  # fmt: skip
        self.enabled = False
        self._spans.clear()
        return whole


@dataclass
class _History:
    """What a key's last prompt was: its messages (the list's items), its tools (by identity), its text
    without the generation prompt, how many messages its *anchor* keeps, and the anchor's text."""

    messages: list[Any]
    tools: Any
    text: str
    anchor: int
    anchor_text: str


class HistoryRenderer:
    """``render(prompt, key)`` -> ``render_prompt(tokenizer, prompt)``, rendering of a conversation's
    prompt only the messages that are new since its key's previous prompt.

    A conversation's prompt at round ``r + 1`` is its round-``r`` messages plus a reply and tool results
    (and perhaps a user turn). A chat template writes each message in turn, so the text of the new
    prompt is the old one (without its generation prompt) followed by what the template writes for the
    new messages and the generation prompt. That tail is taken from a small render -- the conversation's
    *anchor* (its messages up to the first user message: the system turn, the first question) plus the
    new messages -- after the anchor's own text. Where the small render does not start with the
    anchor's text, the prompt does not extend the key's last, or the key is new, the prompt is rendered
    whole (through :class:`ToolRenderer`, so a tool set's schemas are still formatted once).

    Exactness is checked, not assumed: the generation prompt's text is learned from a whole render
    with and without it; the first :attr:`VERIFY` extended prompts, and one in :attr:`CHECK_EVERY` after
    them, are also rendered whole and compared; on any difference (a template that writes an earlier
    message differently as the conversation grows, or looks across messages) the renderer logs why
    and renders whole prompts from then on. Over BFCL's 800 multi-turn conversations (3,336 prompts)
    whole renders were ~2.4 of the ~5 s an H200 sat idle while the host prepared each round.
    """

    #: extended prompts also rendered whole and compared at the start, then one in this many
    VERIFY = 8
    CHECK_EVERY = 64

    def __init__(self, tools: ToolRenderer) -> None:
        self.tools = tools
        self.enabled = True
        self.verified = 0
        self._suffix: str | None = None  # the generation prompt's text, once learned
        self._last: dict[Hashable, _History] = {}
        #: prompts ``extended`` (the key's last text + the new messages' tail) or rendered ``whole``
        self.stats: Counter[str] = Counter()

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)

    def render(self, prompt: Any, key: Hashable | None = None) -> str:
        messages = None if isinstance(prompt, str | list) else prompt.get("messages")
        if key is None or not self.enabled or not messages:
            self.stats["whole"] += 1
            return self.tools.render(prompt)
        last = self._last.get(key)
        text = None
        if (
            last is not None
            and last.tools is prompt.get("tools")
            and len(messages) > len(last.messages)
            and messages[: len(last.messages)] == last.messages  # the same dicts: identity first
        ):
            text = self._extend(prompt, messages, last)
        if text is None:
            self.stats["whole"] += 1
            text = self.tools.render(prompt)
        if self.enabled:
            self._remember(key, prompt, messages, text, last)
        return text

    def _extend(self, prompt: Any, messages: list[Any], last: _History) -> str | None:
        small = self.tools.render(
            {**prompt, "messages": messages[: last.anchor] + messages[len(last.messages) :]}
        )
        if not small.startswith(last.anchor_text):
            return None
        text = last.text + small[len(last.anchor_text) :]
        self.stats["extended"] += 1
        if self.verified < self.VERIFY or self.stats["extended"] % self.CHECK_EVERY == 0:
            whole = self.tools.render(prompt)
            if whole != text:
                log.warning(
                    "rendering only a conversation's new messages changed a prompt (%d vs %d characters): "
                    "rendering whole prompts", len(text), len(whole),
                )  # fmt: skip
                self.enabled = False
                self._last.clear()
                return whole
            self.verified += 1
        return text

    def _remember(
        self, key: Hashable, prompt: Any, messages: list[Any], text: str, last: _History | None
    ) -> None:
        if self._suffix is None:  # learned once: the text a generation prompt adds after the messages
            bare = self.tools.render(prompt, generation_prompt=False)
            if not text.startswith(bare):
                log.warning(
                    "the generation prompt does not follow the messages' text: rendering whole prompts"
                )
                self.enabled = False
                return
            self._suffix = text[len(bare) :]
        if not text.endswith(self._suffix):
            self._last.pop(key, None)
            return
        bare = text[: len(text) - len(self._suffix)]
        tools = prompt.get("tools")
        if (
            last is not None
            and last.tools is tools
            and messages[: last.anchor] == last.messages[: last.anchor]
        ):
            anchor, anchor_text = last.anchor, last.anchor_text
        else:  # through the first user message (at least one message: the template's header with it)
            anchor = next((i + 1 for i, m in enumerate(messages) if m.get("role") == "user"), 1)
            anchor_text = self.tools.render(
                {**prompt, "messages": messages[:anchor]}, generation_prompt=False
            )
        self._last[key] = _History(list(messages), tools, bare, anchor, anchor_text)
