"""Rendering and tokenizing prompts that grow round after round, cheaply.

:class:`TemplateRenderer` renders chat prompts with the tokenizer's compiled chat template directly:
transformers' ``apply_chat_template`` first rebuilds every message and tool schema as plain data (a
guard against rich objects in multimodal inputs), which for BFCL's multi-turn prompts -- dozens of
tool schemas, re-rendered every round -- cost 8.0 s of 12.4 s of rendering in a cProfile of the
800 conversations' host work. Our prompts are plain JSON data already; the text is the same, and is
checked against ``apply_chat_template`` on the first prompts (a difference turns the shortcut off).

:class:`IncrementalEncoder`: token ids of prompts that grow round after round, tokenizing only what is new.

A multi-turn conversation's prompt at round ``r + 1`` is its round-``r`` prompt plus the reply and the
tool results; re-tokenizing all of it every round (thousands of tokens of function docs per
conversation, hundreds of conversations) costs more host time than the new tokens' prefill. A fast
tokenizer splits the text at its special added tokens (``<|im_start|>``, ``<|im_end|>``, ...)
before normalizing and pre-tokenizing, so the ids of ``text[:b] + text[b:]``, with ``b`` just after
a special token, are the ids of ``text[:b]`` followed by those of ``text[b:]``. The encoder keeps,
per key, the prompt up to its last special token and that part's ids; the next prompt of the key
that starts with it tokenizes only the rest.

Exactness is checked, not assumed: on the first prompts split from scratch and on the first that
continue from the cache, the encoder also tokenizes a few of them whole and compares; on any difference (a tokenizer whose normalizer or pre-tokenizer
reaches across special tokens) it logs why and tokenizes whole prompts from then on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class TemplateRenderer:
    """``render(prompt)`` -> :func:`evaluation.generation.generate.render_prompt`'s text (the chat template
    with the generation prompt), from the compiled template without transformers' plain-data copy of
    the inputs. Prompts it cannot vouch for take the library's path: tools that are not dicts, messages
    with keys other than :data:`MESSAGE_KEYS` (transformers aliases reasoning fields, for one). The
    first :data:`VERIFY` direct renders are compared with ``apply_chat_template``; on a difference it
    logs why and uses the library from then on."""

    #: message keys whose rendering the library leaves as they are
    MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "name", "tool_call_id"})
    #: direct renders compared with the library's
    VERIFY = 4

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.enabled, self.checked = True, 0
        self._templates: dict[bool, Any] = {}  # with tools or not -> compiled template
        self.stats = {"direct": 0, "library": 0}
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compile = _compile_jinja_template
            self._kwargs = dict(tokenizer.special_tokens_map)  # what apply_chat_template passes
        except (ImportError, AttributeError) as exc:
            log.info("chat template rendered by apply_chat_template (%s)", exc)
            self.enabled = False

    def _library(self, prompt: dict[str, Any]) -> str:
        from evaluation.generation.generate import render_prompt

        self.stats["library"] += 1
        return render_prompt(self.tokenizer, prompt)

    def render(self, prompt: str | dict[str, Any] | list[dict]) -> str:
        if isinstance(prompt, str):
            return prompt
        if isinstance(prompt, list):
            prompt = {"messages": prompt}
        tools = prompt.get("tools") or None
        messages = prompt["messages"]
        if not (
            self.enabled
            and all(isinstance(t, dict) for t in tools or ())
            and all(isinstance(m, dict) and m.keys() <= self.MESSAGE_KEYS for m in messages)
        ):
            return self._library(prompt)
        template = self._templates.get(tools is not None)
        if template is None:
            template = self._compile(self.tokenizer.get_chat_template(None, tools))
            self._templates[tools is not None] = template
        text = template.render(
            messages=[{k: v for k, v in m.items() if v is not None} for m in messages],
            tools=tools,
            documents=None,
            add_generation_prompt=True,
            **self._kwargs,
        )
        self.stats["direct"] += 1
        if self.checked < self.VERIFY:
            self.checked += 1
            expected = self._library(prompt)
            if text != expected:
                log.warning(
                    "the compiled chat template rendered a prompt unlike apply_chat_template (%d vs %d "
                    "characters): rendering with apply_chat_template from now on",
                    len(text), len(expected),
                )  # fmt: skip
                self.enabled = False
                return expected
        return text


class IncrementalEncoder:
    """``encode(texts, keys)`` -> the ids ``tokenizer(texts, add_special_tokens=False)`` gives, tokenizing
    per key only the text after the last special token the key's previous prompt held."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        specials = sorted(
            (t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special),
            key=len,
            reverse=True,
        )
        self._special = re.compile("|".join(map(re.escape, specials))) if specials else None
        self.verified = {"split": False, "cached": False}  # compared with whole-prompt tokenization
        self.enabled = self._special is not None
        self._cache: dict[Hashable, tuple[str, list[int]]] = {}  # key -> (text up to a split, its ids)
        #: characters tokenized, and characters taken from the cache instead
        self.stats = {"tokenized_chars": 0, "cached_chars": 0}

    def _whole(self, texts: Sequence[str]) -> list[list[int]]:
        self.stats["tokenized_chars"] += sum(map(len, texts))
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def _split_point(self, text: str, start: int) -> int:
        """The end of the last special token in ``text[start:]`` (``start`` when there is none)."""
        end = start
        for match in self._special.finditer(text, start):
            end = match.end()
        return end

    def forget(self, key: Hashable) -> None:
        self._cache.pop(key, None)

    def encode(self, texts: Sequence[str], keys: Sequence[Hashable] | None = None) -> list[list[int]]:
        if keys is None or not self.enabled:
            return self._whole(texts)
        plans, pieces = [], []
        for text, key in zip(texts, keys, strict=True):
            cached = self._cache.get(key)
            start = len(cached[0]) if cached is not None and text.startswith(cached[0]) else 0
            cut = self._split_point(text, start)
            plans.append((key, text, start, cut, cached[1] if start else []))
            pieces += [text[start:cut], text[cut:]]
        self.stats["tokenized_chars"] += sum(map(len, pieces))
        self.stats["cached_chars"] += sum(p[2] for p in plans)
        encoded = self.tokenizer(pieces, add_special_tokens=False)["input_ids"] if pieces else []
        out = []
        for i, (key, text, _start, cut, head) in enumerate(plans):
            upto = head + encoded[2 * i]
            self._cache[key] = (text[:cut], upto)
            out.append(upto + encoded[2 * i + 1])
        for kind in ("split", "cached"):  # once split from scratch, once continuing from the cache
            sample = [i for i, p in enumerate(plans) if (p[2] > 0) == (kind == "cached")][: self.VERIFY]
            if sample and not self.verified[kind]:
                self._verify(kind, [plans[i][1] for i in sample], [out[i] for i in sample])
        return out if self.enabled else self._whole(texts)

    #: prompts compared with whole-prompt tokenization, per kind (a few: prompts are thousands of tokens)
    VERIFY = 4

    def _verify(self, kind: str, texts: list[str], got: list[list[int]]) -> None:
        if not self.enabled:
            return
        whole = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        bad = next((i for i, (a, b) in enumerate(zip(whole, got, strict=True)) if a != b), None)
        if bad is None:
            self.verified[kind] = True
            return
        log.warning(
            "tokenizing at special tokens changed a prompt's ids (%d vs %d tokens, %s): tokenizing whole prompts",
            len(got[bad]), len(whole[bad]), kind,
        )  # fmt: skip
        self.enabled = False
        self._cache.clear()
