"""ToolRenderer: prompts rendered with stand-in tools and the tools' text spliced in equal whole renders;
a tool set is learned once however many conversations carry a copy; templates the splice cannot serve
are rendered whole (counted), and one whose splice would change a prompt is caught and turned off."""

from __future__ import annotations

import copy
import logging

from evaluation.generation.render import HistoryRenderer, ToolRenderer, render_prompt
from tests.evaluation.generation.test_encode import TOOLS, _conversations

WRAPPED = [{"type": "function", "function": t} for t in TOOLS]


def test_spliced_prompts_equal_whole_renders_and_copies_share_a_tool_set(tokenizer):
    for tools in (TOOLS, WRAPPED):
        renderer = ToolRenderer(tokenizer)
        histories = _conversations(4)
        copies = [copy.deepcopy(tools) for _ in histories]  # each conversation its own objects, same content
        for r in range(5):
            for h, own in zip(histories, copies, strict=True):
                prompt = {"messages": h[r], "tools": own}
                assert renderer.render(prompt) == render_prompt(tokenizer, prompt), f"round {r}"
        assert renderer.enabled and renderer.verified == ToolRenderer.VERIFY
        assert renderer.stats == {"learned": 1, "whole": 1, "spliced": 14}
        # a tool set that changes (a held-out function back: a new list) is learned anew
        grown = [*copies[0], {**tools[0], "name": "get_area"} if "name" in tools[0] else tools[0]]
        prompt = {"messages": histories[0][4], "tools": grown}
        assert renderer.render(prompt) == render_prompt(tokenizer, prompt)
        assert renderer.stats["learned"] == 2
    # strings and prompts without tools pass through whole
    assert renderer.render("plain") == "plain"
    assert renderer.render({"messages": histories[0][1]}) == render_prompt(
        tokenizer, {"messages": histories[0][1]}
    )


class _Template:
    """A chat template as a function: ``twice`` writes the tool names before and after the messages;
    ``counting`` writes more of each description as the messages grow (the tools' text depends on them)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=False):
        body = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        names = ",".join(t["name"] for t in tools or [])
        if self.kind == "twice":
            return f"[{names}]{body}[{names}]<assistant>"
        docs = ";".join(f"{t['name']}: {t['description'][: 10 * len(messages)]}" for t in tools or [])
        return f"<tools>{docs}</tools>{body}<assistant>"


def test_a_template_writing_the_tools_apart_renders_whole_prompts():
    template, renderer = _Template("twice"), ToolRenderer(_Template("twice"))
    for r, messages in enumerate(_conversations(3)[0]):
        prompt = {"messages": messages, "tools": TOOLS}
        assert renderer.render(prompt) == render_prompt(template, prompt), f"round {r}"
    # the span between the two name lists held round 0's messages: later rounds do not contain it
    assert renderer.stats == {"learned": 1, "whole": 4} and renderer.enabled


def test_a_splice_that_would_change_a_prompt_is_caught(caplog):
    template, renderer = _Template("counting"), ToolRenderer(_Template("counting"))
    with caplog.at_level(logging.WARNING):
        for r, messages in enumerate(_conversations(3)[0]):
            prompt = {"messages": messages, "tools": TOOLS}
            assert renderer.render(prompt) == render_prompt(template, prompt), f"round {r}"
    assert not renderer.enabled and "rendering whole prompts" in caplog.text
    assert renderer.stats["spliced"] == 1 and renderer.stats["whole"] == 3  # the rounds after it: whole


def test_history_renderer_renders_only_new_messages_and_equals_whole_renders(tokenizer):
    """Keyed conversations round after round: each prompt's text equals a whole render, and after a key's
    first prompt the renderer only renders the anchor and the new messages."""
    renderer = HistoryRenderer(ToolRenderer(tokenizer))
    histories = _conversations(12)
    for r in range(13):
        for key, history in enumerate(histories):
            prompt = {"messages": history[r], "tools": TOOLS}
            assert renderer.render(prompt, key) == render_prompt(tokenizer, prompt), f"round {r}, key {key}"
    assert renderer.enabled and renderer.verified == HistoryRenderer.VERIFY
    assert renderer.stats == {"whole": 3, "extended": 36}
    # a new tool list (a held-out function back), a forgotten key, no key: rendered whole
    prompt = {"messages": histories[0][12], "tools": [*TOOLS]}
    assert renderer.render(prompt, 0) == render_prompt(tokenizer, prompt)
    renderer.forget(1)
    prompt = {"messages": histories[1][12], "tools": TOOLS}
    assert renderer.render(prompt, 1) == render_prompt(tokenizer, prompt)
    assert renderer.render(prompt) == render_prompt(tokenizer, prompt)
    assert renderer.stats == {"whole": 6, "extended": 36}


class _MarkingTemplate:
    """``last="user"``: writes the tools right before the last user message (as some templates do);
    ``last="assistant"``: marks the last assistant message (as templates that drop earlier replies'
    reasoning do). Either way an earlier message's text changes as the conversation grows."""

    def __init__(self, last: str) -> None:
        self.last = last

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=False):
        last = max((i for i, m in enumerate(messages) if m["role"] == self.last), default=-1)
        names = ",".join(t["name"] for t in tools or [])
        mark = f"[{names}]" if self.last == "user" else "*"
        body = "".join(
            (mark if i == last else "") + f"<{m['role']}>{m['content']}" for i, m in enumerate(messages)
        )
        return body + ("<assistant>" if add_generation_prompt else "")


def test_history_renderer_catches_templates_that_rewrite_earlier_messages(caplog):
    """Tools before the last user message: a prompt with a new user message does not start like its
    anchor's text and renders whole (the others extend, rightly). The last reply marked: the first
    extended prompt differs from its whole render, which turns the renderer off."""
    template = _MarkingTemplate("user")
    renderer = HistoryRenderer(ToolRenderer(template))
    for r, messages in enumerate(_conversations(6)[0]):
        prompt = {"messages": messages, "tools": TOOLS}
        assert renderer.render(prompt, "k") == render_prompt(template, prompt), f"round {r}"
    assert renderer.enabled and renderer.stats == {"whole": 4, "extended": 3}
    template = _MarkingTemplate("assistant")
    renderer = HistoryRenderer(ToolRenderer(template))
    with caplog.at_level(logging.WARNING):
        for r, messages in enumerate(_conversations(4)[0]):
            prompt = {"messages": messages, "tools": TOOLS}
            assert renderer.render(prompt, "k") == render_prompt(template, prompt), f"round {r}"
    assert not renderer.enabled and "rendering whole prompts" in caplog.text
