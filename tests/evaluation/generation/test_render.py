"""ToolRenderer: prompts rendered with stand-in tools and the tools' text spliced in equal whole renders;
a tool set is learned once however many conversations carry a copy; templates the splice cannot serve
are rendered whole (counted), and one whose splice would change a prompt is caught and turned off."""

from __future__ import annotations

import copy
import logging

from evaluation.generation.render import ToolRenderer, render_prompt
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
        if self.kind == "numbered":  # the tools counted, and each numbered in turn
            listed = "".join(f"{i + 1}/{len(tools)} {t['name']}\n" for i, t in enumerate(tools or []))
            return f"<tools n={len(tools or [])}>{listed}</tools>{body}<assistant>"
        docs = ";".join(f"{t['name']}: {t['description'][: 10 * len(messages)]}" for t in tools or [])
        return f"<tools>{docs}</tools>{body}<assistant>"


def test_one_stand_in_serves_a_template_that_counts_and_numbers_the_tools():
    template, renderer = _Template("numbered"), ToolRenderer(_Template("numbered"))
    for r, messages in enumerate(_conversations(5)[0]):
        prompt = {"messages": messages, "tools": TOOLS}
        assert renderer.render(prompt) == render_prompt(template, prompt), f"round {r}"
    assert renderer.enabled and renderer.stats == {"learned": 1, "whole": 1, "spliced": 5}


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


def test_tool_sets_differing_only_in_key_order_are_learned_apart():
    """A template may write a tool's keys in their order: the same content in another order is another
    tool set (its own span), never spliced with the first's text."""
    renderer = ToolRenderer(_Ordered())
    first = [{"name": "get_weather", "description": "Weather.", "parameters": {"a": 1, "b": 2}}]
    reordered = [{"description": "Weather.", "name": "get_weather", "parameters": {"b": 2, "a": 1}}]
    messages = [{"role": "user", "content": "hi"}]
    for tools in (first, reordered, first, reordered):
        prompt = {"messages": messages, "tools": tools}
        assert renderer.render(prompt) == _Ordered().apply_chat_template(messages, tools=tools)
    assert renderer.enabled and renderer.stats["learned"] == 2 and renderer.stats["spliced"] == 2


class _Ordered:
    """A template that writes each tool as it is ordered (like ``tojson`` without sorting keys)."""

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=False):
        body = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return f"<tools>{[list(t.items()) for t in tools or []]}</tools>{body}<assistant>"


def test_the_inference_template_renders_generation_blocks_as_they_are(tokenizer):
    """The chat template's ``{% generation %}`` blocks (assistant masks) are plain blocks in the template
    the renderer uses: the same text as the tokenizer's own template, assistant turns and tool calls included."""
    from contracts.chat import CHAT_TEMPLATE
    from evaluation.generation.render import inference_template

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = template = CHAT_TEMPLATE  # the project's template: masks for SFT
    assert "generation" in template and inference_template(template) is not None
    stripped = inference_template(template)
    assert "{%- generation" not in stripped and inference_template(stripped) is None
    assert inference_template(None) is None and inference_template({"default": template}) is None
    messages = [
        {"role": "user", "content": "  hi\n"},
        {"role": "assistant", "content": "Calling.", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
        {"role": "tool", "content": '{"ok": true}'},
        {"role": "assistant", "content": "Done.\n"},
        {"role": "user", "content": "again"},
    ]
    prompt = {"messages": messages, "tools": [{"name": "f", "description": "d", "parameters": {}}]}
    assert render_prompt(tokenizer, prompt, stripped) == render_prompt(tokenizer, prompt)
    renderer = ToolRenderer(tokenizer)
    assert renderer.template == stripped
    for _ in range(3):  # learned, then spliced (and checked against the tokenizer's own template)
        assert renderer.render(prompt) == render_prompt(tokenizer, prompt)
    assert renderer.enabled and renderer.template == stripped and renderer.verified == 2


def _count_chat_template_calls(tokenizer, monkeypatch) -> list[int]:
    """The list each call of ``tokenizer``'s class's ``apply_chat_template`` appends to from now on."""
    calls: list[int] = []
    apply = type(tokenizer).apply_chat_template

    def counting(self, *args, **kwargs):
        calls.append(1)
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "apply_chat_template", counting)
    return calls


def test_spliced_renders_go_to_the_compiled_template_only_for_plain_messages(tokenizer, monkeypatch, caplog):
    """A spliced render's messages go straight to the compiled template (no apply_chat_template) when they
    are plain chat messages (``None`` values dropped, as apply_chat_template does): the same text; other
    messages go through apply_chat_template; the check every VERIFY_EVERY spliced prompts catches a
    compiled path that writes differently, and turns it off."""
    from contracts.chat import CHAT_TEMPLATE

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = CHAT_TEMPLATE
    reference = [render_prompt(tokenizer, {"messages": h[-1], "tools": TOOLS}) for h in _conversations(3)]
    renderer = ToolRenderer(tokenizer)
    assert renderer._compiled is not None
    calls = _count_chat_template_calls(tokenizer, monkeypatch)
    histories = _conversations(3)
    renderer.render({"messages": histories[0][0], "tools": TOOLS})  # learned (and checked)
    renderer.verified = ToolRenderer.VERIFY  # past the first checks
    calls.clear()
    for h, expected in zip(histories, reference, strict=True):
        messages = [{**m, "name": None} for m in h[-1]]  # None values are dropped
        assert renderer.render({"messages": messages, "tools": TOOLS}) == expected
    assert not calls  # spliced on the compiled template alone
    odd = [{**h, "reasoning_content": "x"} if h["role"] == "assistant" else h for h in histories[0][-1]]
    assert renderer.render({"messages": odd, "tools": TOOLS}) == render_prompt(
        tokenizer, {"messages": odd, "tools": TOOLS}
    )
    assert calls  # not a plain chat message: apply_chat_template
    # a compiled path that writes otherwise is caught by the periodic check
    real = renderer._compiled
    renderer._compiled = type("Odd", (), {"render": lambda self, **kw: real.render(**kw) + " "})()
    renderer.stats["spliced"] = ToolRenderer.VERIFY_EVERY - 1
    with caplog.at_level(logging.WARNING):
        prompt = {"messages": histories[1][-1], "tools": TOOLS}
        assert renderer.render(prompt) == render_prompt(tokenizer, prompt)
    assert not renderer.enabled and renderer._compiled is None


def test_a_tool_sets_first_prompt_renders_on_the_compiled_template_when_its_tools_are_plain(
    tokenizer, monkeypatch, caplog
):
    """Learning a tool set renders its first prompt on the compiled template too where the tools are
    plain JSON data (checked against apply_chat_template for the first VERIFY sets); tools holding
    anything else (a tuple, a str subclass) go through apply_chat_template; a compiled path that writes
    otherwise is caught at learning."""
    import enum

    from contracts.chat import CHAT_TEMPLATE
    from evaluation.generation.render import json_plain

    assert json_plain(TOOLS) and json_plain([{"a": [1, 2.5, None, True, "x"]}])
    assert not json_plain([{"a": (1, 2)}]) and not json_plain([{1: "x"}])
    Kind = enum.Enum("Kind", {"S": "string"}, type=str)
    assert not json_plain([{"type": Kind.S}])

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = CHAT_TEMPLATE
    apply = type(tokenizer).apply_chat_template
    calls = _count_chat_template_calls(tokenizer, monkeypatch)
    counting = type(tokenizer).apply_chat_template
    renderer = ToolRenderer(tokenizer)
    renderer.learned_verified = ToolRenderer.VERIFY  # past the first checks
    messages = _conversations(1)[0][1]
    sets = [[{**t, "name": f"{t['name']}_{k}"} for t in TOOLS] for k in range(3)]
    for tools in sets:
        got = renderer.render({"messages": messages, "tools": tools})
        monkeypatch.setattr(type(tokenizer), "apply_chat_template", apply)
        assert got == render_prompt(tokenizer, {"messages": messages, "tools": tools})
        monkeypatch.setattr(type(tokenizer), "apply_chat_template", counting)
    assert renderer.stats["learned"] == 3 and not calls  # none through apply_chat_template
    odd = [{**TOOLS[0], "parameters": {**TOOLS[0]["parameters"], "required": ("city",)}}]
    renderer.render({"messages": messages, "tools": odd})
    assert calls  # not plain data: apply_chat_template
    # the first VERIFY learned sets are checked: a compiled template writing otherwise is caught
    checking = ToolRenderer(tokenizer)
    real = checking._compiled
    checking._compiled = type("Odd", (), {"render": lambda self, **kw: real.render(**kw) + " "})()
    with caplog.at_level(logging.WARNING):
        prompt = {"messages": messages, "tools": sets[0]}
        assert checking.render(prompt) == render_prompt(tokenizer, prompt)
    assert not checking.enabled and "compiled template" in caplog.text


def test_a_conversations_next_prompt_renders_only_its_new_messages(tokenizer, monkeypatch):
    """Keyed prompts that repeat the key's previous messages render only the new ones (after a probe
    message) and append them: the text of a whole render, for our template; a prompt whose earlier messages
    changed, or whose tools did, renders in full; ``forget`` drops a key's text."""
    from contracts.chat import CHAT_TEMPLATE

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = CHAT_TEMPLATE
    renderer = ToolRenderer(tokenizer)
    histories = _conversations(4)
    for r in range(5):
        for c, h in enumerate(histories):
            prompt = {"messages": list(h[r]), "tools": TOOLS}
            assert renderer.render(prompt, key=c) == render_prompt(tokenizer, prompt), f"round {r}"
    assert renderer.stats["continued"] == 3 * 4 and renderer.incremental
    assert renderer.continued_verified == ToolRenderer.VERIFY
    renderer.continued_verified = ToolRenderer.VERIFY  # past the checks: what follows is the fast path's own
    rendered = []
    monkeypatch.setattr(
        renderer, "_render", lambda prompt: rendered.append(prompt) or ToolRenderer._render(renderer, prompt)
    )
    grown = [*histories[0][4], {"role": "user", "content": "One more?"}]
    assert renderer.render({"messages": grown, "tools": TOOLS}, key=0) == render_prompt(
        tokenizer, {"messages": grown, "tools": TOOLS}
    )
    assert not rendered  # continued
    edited = copy.deepcopy(grown) + [{"role": "user", "content": "And?"}]
    edited[0]["content"] = "changed"  # an earlier message is not what the key's text holds
    prompt = {"messages": edited, "tools": TOOLS}
    assert renderer.render(prompt, key=0) == render_prompt(tokenizer, prompt) and len(rendered) == 1
    more = [*edited, {"role": "user", "content": "Last."}]
    prompt = {"messages": more, "tools": [*TOOLS, {**TOOLS[0], "name": "get_area"}]}  # other tools
    assert renderer.render(prompt, key=0) == render_prompt(tokenizer, prompt) and len(rendered) == 2
    renderer.forget(0)
    prompt = {"messages": [*more, {"role": "user", "content": "Gone?"}], "tools": prompt["tools"]}
    assert renderer.render(prompt, key=0) == render_prompt(tokenizer, prompt) and len(rendered) == 3


class _Numbered:
    """A template that numbers the messages from ``start`` on: a message's text depends on how many came
    before it."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=False, **_):
        names = ",".join(t["name"] for t in tools or [])
        number = lambda i: f"[{i}]" if i >= self.start else ""  # noqa: E731
        body = "".join(f"{number(i)}{m['role']}:{m['content']}\n" for i, m in enumerate(messages))
        return f"<{names}>{body}" + ("assistant:" if add_generation_prompt else "")


def test_a_template_that_is_not_message_by_message_is_caught_and_rendered_in_full(caplog):
    """A template that writes earlier messages differently as the conversation grows fails the sample
    conversation at the start (nothing continued); one that differs only past the sample's length is
    caught by the run-time check; either way every prompt is the template's."""
    history = _conversations(6)[0]
    renderer, template = ToolRenderer(_Numbered()), _Numbered()
    for r in range(4):
        prompt = {"messages": history[r], "tools": TOOLS}
        assert renderer.render(prompt, key="k") == template.apply_chat_template(history[r], tools=TOOLS)
    assert renderer._probe() is None and renderer.stats["continued"] == 0
    late, template = ToolRenderer(_Numbered(start=9)), _Numbered(start=9)
    with caplog.at_level(logging.WARNING):
        for r in range(7):
            prompt = {"messages": history[r], "tools": TOOLS}
            assert late.render(prompt, key="k") == template.apply_chat_template(history[r], tools=TOOLS)
    assert not late.incremental and "continuing a conversation" in caplog.text
    assert late.stats["continued"] >= 2 and not late._last
