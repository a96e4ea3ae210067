"""Token ids of prompts that grow round after round, tokenizing only what is new.

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
