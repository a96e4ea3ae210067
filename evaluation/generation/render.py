"""Chat-template rendering that formats each tool set once, however many rounds reuse it.

A multi-turn conversation's prompt carries its tools' schemas every round -- most of its text in
BFCL's multi-turn categories (thousands of tokens of function docs). ``apply_chat_template`` copies
every schema into plain data and the template's ``tojson`` serializes it again on every render: over
BFCL's 800 conversations that was about half of the host's rendering time (py-spy, CPU). The
renderer below renders a prompt with small *stand-in* tools instead and splices the real tools' text
in, learned once per tool set:

1. The first prompt with a tool set is rendered twice, with the real tools (``T``) and with a stand-in
   (``S``: one tool shaped like the first, a marker name, no description or parameters). The two texts
   differ only where the template wrote the tools; their common head and tail leave that span,
   ``X_T`` in one and ``X_S`` in the other.
2. Later prompts with the same tool set are rendered with the stand-in; where ``X_S`` occurs exactly
   once it is replaced by ``X_T``. Elsewhere (a template that writes the tools in several places, or
   differently as the messages change) the prompt is rendered whole, counted.

A template's ``{% generation %}`` blocks (transformers' marks for assistant-token masks in training)
render their body as it is, but each one costs a call into transformers' tracking extension: about a
third of a BFCL prompt's rendering with its assistant turns (cProfile, H200 host). The renderer renders
with :func:`inference_template` -- the same template with those blocks made plain ``if true`` blocks,
the same whitespace control -- which writes the same text.

A spliced render's messages go to the compiled template directly (transformers'
``_compile_jinja_template``, cached by it) rather than through ``apply_chat_template``, which first
rebuilds every message out of plain data (``_plain_template_data``: its guard against rich objects that
the sandbox must not see; about a third of a render): these messages are the caller's plain dicts, and
only messages with the keys a chat message has (role, content, tool calls, name, tool-call id) take
that path; the rest go through ``apply_chat_template``.

A conversation's next prompt (``render(prompt, key)``) repeats its previous messages and adds a few: the
previous text (without its generation prompt) is kept per key, and only the new messages are rendered --
after a one-message probe, whose text is then cut off -- and appended. That holds for templates that write
each message on its own (ChatML-like: ours, Qwen's), not for ones that write earlier messages differently as
the conversation grows: a sample conversation (:data:`SAMPLE`) continued from each of its messages is
compared with the tokenizer's own whole render once, at the start, and the same run-time checks as the
splice's follow (either turns it off). BFCL's 800 conversations: 2,336 of 3,336
prompts continued; a tool set's first prompt renders on the compiled template too where its tools are plain
JSON data (:func:`json_plain`).

Exactness is checked, not assumed: the first :attr:`ToolRenderer.VERIFY` spliced prompts, and one in
every :attr:`ToolRenderer.VERIFY_EVERY` after them, are also rendered whole through the tokenizer's own
``apply_chat_template`` and template and compared; on any difference the renderer logs why and renders whole prompts from
then on. A tool set is keyed by the identity of its list and of its dicts (the caller does not mutate
them in place: :mod:`evaluation.bfcl.multi_turn` builds a new list when a held-out function comes
back); the renderer holds them, so an identity is never reused while cached.
"""

from __future__ import annotations

import logging
import marshal
import os
import re
from collections import Counter
from collections.abc import Hashable
from typing import Any

log = logging.getLogger(__name__)

#: marks the stand-in tools' names (ASCII, so a template's JSON writes it as it is, escaped or not)
MARK = "__forge_stand_in_"


def render_prompt(tokenizer: Any, prompt: Any, chat_template: str | None = None) -> str:
    """Prompt text for one input: strings pass through, conversations go through the chat template
    (the tokenizer's, or ``chat_template``)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # bare message list
        prompt = {"messages": prompt}
    tools = prompt.get("tools") or None
    extra = {"chat_template": chat_template} if chat_template is not None else {}
    return tokenizer.apply_chat_template(
        prompt["messages"], tools=tools, add_generation_prompt=True, tokenize=False, **extra
    )


_GENERATION = re.compile(r"\{%(-?)\s*generation\s*(-?)%\}")
_END_GENERATION = re.compile(r"\{%(-?)\s*endgeneration\s*(-?)%\}")


def inference_template(template: Any) -> str | None:
    """``template`` with its ``{% generation %}...{% endgeneration %}`` blocks made ``{% if true
    %}...{% endif %}`` (the same whitespace control): the same text, without transformers' assistant-mask
    tracking. ``None`` when there is nothing to change (no such block, or not one template string)."""
    if not isinstance(template, str) or not _GENERATION.search(template):
        return None
    return _END_GENERATION.sub(r"{%\1 endif \2%}", _GENERATION.sub(r"{%\1 if true \2%}", template))


#: the message a conversation's new messages are rendered after (:meth:`ToolRenderer._continue`)
PROBE = {"role": "user", "content": "."}

#: a conversation of every kind of message, continued from each of its messages on to test a template
SAMPLE = [
    {"role": "user", "content": "Hi."},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Call f."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
    },
    {"role": "tool", "content": '{"ok": true}'},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "Bye."},
]

#: the keys of a message that the direct render takes (others -- reasoning fields, which
#: ``apply_chat_template`` aliases, or anything else -- go through ``apply_chat_template``)
PLAIN_KEYS = frozenset({"role", "content", "tool_calls", "name", "tool_call_id"})


def compiled_template(template: Any) -> Any:
    """transformers' compiled (sandboxed, cached) form of ``template``; ``None`` where this version of
    transformers has no such function or the template is not one string."""
    if not isinstance(template, str):
        return None
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        return _compile_jinja_template(template)
    except Exception:  # noqa: BLE001 - a transformers without it: apply_chat_template, as before
        return None


def stand_ins(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One small tool standing for all of ``tools``, shaped like the first (OpenAI's ``{"type",
    "function"}`` wrapper or a bare function), with a marker name and nothing to serialize. One, not
    one per tool: a render's cost is mostly its tools' (a BFCL prompt with 30-odd stand-ins took
    0.30 ms, nearly all of it converting and serializing them), whatever the messages."""
    tool = tools[0]
    function = {"name": f"{MARK}0", "description": "", "parameters": {"type": "object", "properties": {}}}
    return [{"type": tool.get("type", "function"), "function": function} if "function" in tool else function]


def json_plain(value: Any) -> bool:
    """Whether ``value`` is made of JSON's types only (``dict`` with ``str`` keys, ``list``, ``str``,
    ``int``, ``float``, ``bool``, ``None``; not their subclasses): what ``apply_chat_template``'s copy into
    plain data would give back equal, so the compiled template may see it as it is."""
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            if not set(map(type, item)) <= _STR:
                return False
            push(item.values())
        elif kind is list:
            push(item)
        elif kind not in _JSON_SCALARS:
            return False
    return True


_STR = frozenset({str})
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def content_key(value: Any) -> bytes | str:
    """A key that differs wherever ``value``'s content or order does: ``marshal``'s bytes (format 2: no
    back-references, so how objects are shared does not change them; core types only; BFCL's 1,000-odd
    tool lists ~43 µs each), else its ``repr`` (~125 µs). Not canonical JSON: two sets that differ only in
    their keys' order may render differently, so they are two keys; two equal sets can get two keys where
    a string is interned in one and not the other, which costs learning one set twice, never a wrong text."""
    try:
        return marshal.dumps(value, 2)
    except ValueError:  # a type marshal does not write (a subclass, an object)
        return repr(value)


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
    #: after those, one spliced prompt in this many is checked too (the direct render's messages vary)
    VERIFY_EVERY = 256

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        #: the template rendered with (:func:`inference_template`; ``None``: the tokenizer's own)
        self.template = inference_template(getattr(tokenizer, "chat_template", None))
        #: the spliced renders' template, compiled (:func:`compiled_template`; ``None``: apply_chat_template)
        self._compiled = compiled_template(self.template or getattr(tokenizer, "chat_template", None))
        self._special = dict(getattr(tokenizer, "special_tokens_map", {}) or {}) if self._compiled else {}
        self.enabled = True
        self.verified = 0
        self.learned_verified = 0  # tool sets' first prompts rendered on the compiled template and checked
        #: tool-set key -> (its tools, held; the stand-ins' span, the real tools' span), or None where
        #: the template's text for the tools could not be told apart (those prompts render whole)
        self._spans: dict[bytes | str, tuple[list[Any], tuple[str, str] | None]] = {}
        #: a tool list's identity (the list's and its dicts', held so they stay unique) -> its content key
        self._keys: dict[tuple[int, ...], tuple[list[Any], bytes | str | None]] = {}
        #: prompts ``spliced`` (stand-in render + tools' text), ``whole`` (rendered with the real tools:
        #: strings, no tools, a tool set's first prompt, a span not found once), ``learned`` tool sets, and
        #: ``continued`` (a key's previous text and its new messages' text)
        self.stats: Counter[str] = Counter()
        #: keyed prompts continue their key's previous text (:meth:`_continue`)
        self.incremental = True
        self.continued_verified = 0
        #: key -> (its last prompt's messages, copied; its tools list, held; that prompt's text without the
        #: generation prompt)
        self._last: dict[Hashable, tuple[list[dict[str, Any]], Any, str]] = {}
        #: (the probe's text, the generation prompt); False: not computed yet
        self._frame: tuple[str, str] | None | bool = False

    def render(self, prompt: Any, key: Hashable | None = None) -> str:
        """The prompt's text. ``key`` (a conversation): a prompt that repeats the key's previous messages
        and adds some renders only the new ones (see :meth:`_continue`)."""
        if key is None or not self.incremental or not self.enabled or isinstance(prompt, str | list):
            return self._render(prompt)
        text = self._continue(key, prompt)
        if text is None:
            text = self._render(prompt)
        if self.incremental:
            self._remember(key, prompt, text)
        return text

    def forget(self, key: Hashable) -> None:
        """``key``'s conversation ended: its last text goes."""
        self._last.pop(key, None)

    def _continue(self, key: Hashable, prompt: Any) -> str | None:
        """The key's previous text (without its generation prompt) followed by the new messages' text, as
        the template writes them after a probe message; ``None`` where that does not apply (no previous
        prompt, other tools, earlier messages changed, messages that are not plain chat messages). Exact
        for templates that write each message on its own (ChatML-like: ours, Qwen's); checked, the first
        :attr:`VERIFY` and one in :attr:`VERIFY_EVERY`, against the tokenizer's own whole render, and off
        for good on any difference."""
        last = self._last.get(key)
        if last is None:
            return None
        held, tools, base = last
        messages = prompt["messages"]
        n = len(held)
        if prompt.get("tools") is not tools or len(messages) <= n or messages[:n] != held:
            return None
        new = messages[n:]
        if not all(type(m) is dict and m.keys() <= PLAIN_KEYS for m in new):
            return None
        frame = self._probe()
        if frame is None:
            return None
        head, generation = frame
        rendered = self._render_cheap([PROBE, *new], None)
        if not rendered.startswith(head) or not rendered.endswith(generation):
            return None
        text = base + rendered[len(head) :]
        self.stats["continued"] += 1
        due = self.continued_verified < self.VERIFY or self.stats["continued"] % self.VERIFY_EVERY == 0
        if not due:
            return text
        whole = render_prompt(self.tokenizer, prompt)
        if whole == text:
            self.continued_verified += 1
            return text
        log.warning(
            "continuing a conversation's text changed a prompt (%d vs %d characters): rendering each prompt "
            "in full",
            len(text), len(whole),
        )  # fmt: skip
        self.incremental = False
        self._last.clear()
        return whole

    def _probe(self) -> tuple[str, str] | None:
        """(the template's text for :data:`PROBE` alone, the generation prompt it adds), or ``None`` where the
        generation prompt is not a suffix (then nothing continues)."""
        if self._frame is False:
            try:
                head = self._render_cheap([PROBE], None, generation=False)
                full = self._render_cheap([PROBE], None)
                frame = (head, full[len(head) :]) if full.startswith(head) and len(full) > len(head) else None
                self._frame = frame if frame is not None and self._continues(frame) else None
            except Exception as exc:  # noqa: BLE001 - a template that refuses the probe: nothing continues
                log.info("the chat template cannot be continued message by message (%s)", exc)
                self._frame = None
        return self._frame  # type: ignore[return-value]

    def _continues(self, frame: tuple[str, str]) -> bool:
        """Whether a sample conversation (:data:`SAMPLE`), continued from each of its messages on, gives
        the tokenizer's own whole render: templates that write an earlier message differently once more
        follow (its number, whether it is the last, the last user turn's place) fail here."""
        head, generation = frame
        tools = stand_ins([{"name": "f"}])
        whole = render_prompt(self.tokenizer, {"messages": SAMPLE, "tools": tools})
        for cut in range(1, len(SAMPLE)):
            start, rest = SAMPLE[:cut], SAMPLE[cut:]
            before = render_prompt(self.tokenizer, {"messages": start, "tools": tools})
            after = self._render_cheap([PROBE, *rest], None)
            if not (before.endswith(generation) and after.startswith(head)):
                return False
            if before[: len(before) - len(generation)] + after[len(head) :] != whole:
                log.info("the chat template writes earlier messages differently as a conversation grows")
                return False
        return True

    def _remember(self, key: Hashable, prompt: Any, text: str) -> None:
        messages = prompt.get("messages") if isinstance(prompt, dict) else None
        plain = isinstance(messages, list) and all(type(m) is dict for m in messages)
        frame = self._probe() if plain else None
        if frame is None or not text.endswith(frame[1]):
            self._last.pop(key, None)
            return
        self._last[key] = (
            [dict(m) for m in messages],
            prompt.get("tools"),
            text[: len(text) - len(frame[1])],
        )

    def _render(self, prompt: Any) -> str:
        tools = None if isinstance(prompt, str | list) else prompt.get("tools")
        key = self._key(tools) if tools and self.enabled else None
        if key is None:
            self.stats["whole"] += 1
            return render_prompt(self.tokenizer, prompt, self.template)
        entry = self._spans.get(key)
        if entry is None:
            return self._learn(key, prompt, tools)
        span = entry[1]
        if span is not None:
            cheap = self._render_cheap(prompt["messages"], stand_ins(tools))
            if cheap.count(span[0]) == 1:
                text = cheap.replace(span[0], span[1])
                self.stats["spliced"] += 1
                due = self.verified < self.VERIFY or self.stats["spliced"] % self.VERIFY_EVERY == 0
                return self._verify(prompt, text) if due else text
        self.stats["whole"] += 1
        return render_prompt(self.tokenizer, prompt, self.template)

    def _render_cheap(
        self, messages: list[Any], tools: list[dict[str, Any]] | None, generation: bool = True
    ) -> str:
        """The prompt with ``tools`` (stand-ins, or plain JSON data): on the compiled template when every
        message is a plain chat message (``None`` values dropped, as ``apply_chat_template`` drops them),
        else through it."""
        if self._compiled is not None and all(type(m) is dict and m.keys() <= PLAIN_KEYS for m in messages):
            plain = [{k: v for k, v in m.items() if v is not None} for m in messages]
            return self._compiled.render(
                messages=plain, tools=tools, documents=None, add_generation_prompt=generation, **self._special
            )
        if not generation:
            return self.tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=False, tokenize=False,
                **({"chat_template": self.template} if self.template is not None else {}),
            )  # fmt: skip
        return render_prompt(self.tokenizer, {"messages": messages, "tools": tools}, self.template)

    def _key(self, tools: list[Any]) -> bytes | str | None:
        """A tool set's content and order (:func:`content_key`), computed once per list and dicts held
        (``None``: not a list of dicts, rendered whole)."""
        ident = (id(tools), *map(id, tools))
        known = self._keys.get(ident)
        if known is None:
            plain = all(isinstance(t, dict) for t in tools)
            known = self._keys[ident] = (tools, content_key(tools) if plain else None)
        return known[1]

    def _learn(self, key: bytes | str, prompt: Any, tools: list[Any]) -> str:
        # a tool set's first prompt: on the compiled template too where the tools are plain JSON data
        # (BFCL's 266 sets: apply_chat_template's copy of them into plain data was 60% of learning them)
        direct = json_plain(tools)
        text = (
            self._render_cheap(prompt["messages"], tools)
            if direct
            else render_prompt(self.tokenizer, prompt, self.template)
        )
        if direct and self.learned_verified < self.VERIFY:  # checked as the spliced renders are
            text = self._verify(prompt, text, "learned_verified")
            if not self.enabled:
                return text
        cheap = self._render_cheap(prompt["messages"], stand_ins(tools))
        head, end, cheap_end = differing_span(text, cheap)
        span = (cheap[head:cheap_end], text[head:end])
        self._spans[key] = (tools, span if MARK in span[0] else None)
        self.stats["learned"] += 1
        self.stats["whole"] += 1
        return text

    def _verify(self, prompt: Any, text: str, counter: str = "verified") -> str:
        whole = render_prompt(self.tokenizer, prompt)
        if whole == text:
            setattr(self, counter, getattr(self, counter) + 1)
            return text
        log.warning(
            "%s changed a prompt (%d vs %d characters): rendering whole prompts with the tokenizer's own template",
            "splicing the tools' text" if counter == "verified" else "rendering on the compiled template",
            len(text), len(whole),
        )  # fmt: skip
        self.enabled = False
        self.template = self._compiled = None
        self._spans.clear()
        return whole
