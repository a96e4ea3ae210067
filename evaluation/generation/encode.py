"""Token ids of prompts that grow round after round, tokenizing only what is new.

A multi-turn conversation's prompt at round ``r + 1`` is its round-``r`` prompt plus the reply and the
tool results; re-tokenizing all of it every round (thousands of tokens of function docs per
conversation, hundreds of conversations) costs more host time than the new tokens' prefill. A fast
tokenizer splits the text at its special added tokens (``<|im_start|>``, ``<|im_end|>``, ...)
before normalizing and pre-tokenizing, so the ids of ``text[:b] + text[b:]``, with ``b`` just after
a special token, are the ids of ``text[:b]`` followed by those of ``text[b:]``. The encoder keeps,
per key, the prompt up to its last special token and that part's ids; the next prompt of the key
that starts with it tokenizes only the rest.

A key's first prompt often starts like another key's: conversations with the same tools share their
system turn (BFCL's 800 multi-turn conversations have 266 tool sets, thousands of tokens each). The
encoder also keeps *heads* -- a first prompt's text up to its first special token past
:attr:`IncrementalEncoder.MIN_HEAD` characters (its system turn, as chat templates write it), with
their ids (the :attr:`IncrementalEncoder.HEADS` most recently used) -- and a first prompt that starts
with a kept head tokenizes only what follows it.
Within one call, a piece several prompts hold (conversations with the same tools starting together,
before any head is kept) is tokenized once: BFCL's first round of 256 first prompts tokenized 2.2M
characters instead of 5.7M.

A long piece -- a system turn with a tool set's docs, which chat templates write one tool per line -- is
tokenized line by line, each line once: BFCL's 266 tool sets are 6.5M characters of system turns over a run
but 134 distinct lines (100k characters). A line here ends at a single newline between two characters
that are not whitespace (``}\n{``): byte-level pre-tokenizers (GPT-2's, Llama 3's, Qwen's) make such a
newline a pre-token of its own or the end of the one before it, never part of what follows, and BPE merges
stay within pre-tokens, so the ids of the lines put end to end are the piece's. Not after a run of
whitespace: GPT-2's pattern splits ``\n\n`` before a word into two pre-tokens but keeps it one (a single
merged token) at the end of a text. A tokenizer is probed at the start (a text with such boundaries between
letters, digits and punctuation, tokenized whole and line by line), and the lines are checked at run time
too (the first :attr:`IncrementalEncoder.LINES_VERIFY` line-split pieces and one in
:attr:`IncrementalEncoder.LINES_VERIFY_EVERY` after them, tokenized whole and compared); a tokenizer for
which it does not hold (SentencePiece's metaspace, a prefix space added to every text) tokenizes long
pieces whole.

The pieces go straight to the fast tokenizer's Rust backend (``encode_batch_fast``: no character
offsets, which nothing here reads) where that gives what ``tokenizer(texts, add_special_tokens=False)``
gives -- no truncation or padding set on the backend, special tokens matched as the tokenizer matches them
(:func:`backend_encoder`). Over a round of 256 BFCL continuation prompts (short new pieces) that was 9.4 ms
against 32.5 ms through the tokenizer's ``__call__``, which builds a ``BatchEncoding`` of every field; for
whole prompts 0.61 s against 0.95 s (CPU VM, two threads).

Exactness is checked, not assumed: on the first prompts split from scratch and on the first that
continue from the cache, the encoder also tokenizes a few of them whole (through the tokenizer's own
``__call__``, the reference) and compares; on any difference (a tokenizer whose normalizer or pre-tokenizer
reaches across special tokens) it logs why and tokenizes whole prompts from then on.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def backend_encoder(tokenizer: Any) -> Callable[[list[str]], list[list[int]]] | None:
    """``texts -> ids`` on a fast tokenizer's Rust backend, the same ids as ``tokenizer(texts,
    add_special_tokens=False)["input_ids"]`` without building a ``BatchEncoding``; ``None`` where the
    backend would not give those (no backend; truncation or padding set on it, which the tokenizer's call
    would reset; its special-token splitting not the tokenizer's)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch"):
        return None
    if getattr(backend, "truncation", None) is not None or getattr(backend, "padding", None) is not None:
        return None
    if bool(getattr(backend, "encode_special_tokens", False)) != bool(
        getattr(tokenizer, "split_special_tokens", False)
    ):
        return None
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch

    def ids(texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]

    return ids


def split_lines(text: str) -> list[str]:
    """``text`` cut after each newline that stands between two characters that are not whitespace (what
    ``re.split(r"(?<=\\S\\n)(?=\\S)", text)`` gives, ~13x faster on BFCL's system turns); the parts put
    end to end are ``text``."""
    parts = text.split("\n")
    out = []
    current = parts[0]
    for before, after in zip(parts, parts[1:], strict=False):
        if before and after and not before[-1].isspace() and not after[0].isspace():
            out.append(current + "\n")
            current = after
        else:
            current = f"{current}\n{after}"
    out.append(current)
    return out


class IncrementalEncoder:
    """``encode(texts, keys)`` -> the ids ``tokenizer(texts, add_special_tokens=False)`` gives, tokenizing
    per key only the text after the last special token the key's previous prompt held."""

    #: heads kept for other keys' first prompts (the least recently used dropped past this many)
    HEADS = 256
    #: a head shorter than this many characters is not kept (a tool set's docs or a system prompt is)
    MIN_HEAD = 1000

    #: a piece at least this many characters long is tokenized line by line (its lines' ids kept)
    LINES_FROM = 2048
    #: lines kept with their ids (the least recently used dropped past this many)
    LINES = 16384
    #: line-split pieces also tokenized whole and compared: the first this many, ...
    LINES_VERIFY = 4
    #: ... and after them one in this many
    LINES_VERIFY_EVERY = 64

    def __init__(
        self,
        tokenizer: Any,
        *,
        share_heads: bool = True,
        share_pieces: bool = True,
        share_lines: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.share_heads = share_heads
        self.share_pieces = share_pieces  # a piece several prompts of a call hold tokenized once
        self.share_lines = share_lines  # a long piece tokenized line by line, each line once
        specials = sorted(
            (t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special),
            key=len,
            reverse=True,
        )
        self._special = re.compile("|".join(map(re.escape, specials))) if specials else None
        #: compared with whole-prompt tokenization: prompts split from scratch, continuing their key's,
        #: starting with another prompt's head
        self.verified = {"split": False, "cached": False, "shared": False}
        self.enabled = self._special is not None
        self._cache: dict[Hashable, tuple[str, list[int]]] = {}  # key -> (text up to a split, its ids)
        self._heads: OrderedDict[str, list[int]] = OrderedDict()  # head text -> its ids
        self._lines: OrderedDict[str, list[int]] = OrderedDict()  # line text -> its ids
        if self.share_lines and self.enabled:
            lines = split_lines(self.LINES_PROBE)
            self.share_lines = len(lines) > 1 and self._lines_probe(lines)
        self._line_split_pieces = 0  # long pieces tokenized line by line so far (for the checks' schedule)
        #: characters tokenized, and characters taken from a key's cache, from a head, from an identical
        #: piece of another prompt of the same call, or from lines tokenized before, instead
        self.stats = {
            "tokenized_chars": 0,
            "cached_chars": 0,
            "shared_chars": 0,
            "repeated_chars": 0,
            "line_chars": 0,
        }
        #: the pieces' tokenizer: the Rust backend where it gives the same ids, else the tokenizer's call
        self._ids = backend_encoder(tokenizer) or self._call

    def _call(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _whole(self, texts: Sequence[str]) -> list[list[int]]:
        self.stats["tokenized_chars"] += sum(map(len, texts))
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def _splits(self, text: str, start: int) -> list[int]:
        """The end of every special token in ``text[start:]``."""
        return [match.end() for match in self._special.finditer(text, start)]

    def _head(self, text: str, splits: list[int]) -> tuple[int, list[int]]:
        """The longest kept head ``text`` starts with: (its length, its ids); (0, []) when none."""
        if self.share_heads and self._heads:
            for end in reversed(splits):
                if end < self.MIN_HEAD:
                    break
                ids = self._heads.get(text[:end])
                if ids is not None:
                    self._heads.move_to_end(text[:end])
                    return end, ids
        return 0, []

    def forget(self, key: Hashable) -> None:
        self._cache.pop(key, None)

    def encode(self, texts: Sequence[str], keys: Sequence[Hashable] | None = None) -> list[list[int]]:
        if keys is None or not self.enabled:
            return self._whole(texts)
        plans, pieces = [], []
        for text, key in zip(texts, keys, strict=True):
            cached = self._cache.get(key)
            if cached is not None and text.startswith(cached[0]):
                kind, start, head = "cached", len(cached[0]), cached[1]
                splits = self._splits(text, start)
            else:
                splits = self._splits(text, 0)
                start, head = self._head(text, splits)
                kind = "shared" if start else "split"
                splits = [end for end in splits if end > start]
            cut = splits[-1] if splits else start
            # a first prompt's head -- its text up to its first special token past MIN_HEAD characters (the
            # system turn: tools and system prompt) -- is tokenized as a piece of its own and kept
            marks = (
                [e for e in splits[:-1] if e >= self.MIN_HEAD][:1]
                if self.share_heads and kind != "cached"
                else []
            )
            bounds = [start, *marks, cut]
            plans.append((key, text, kind, bounds, head, len(pieces)))
            pieces += [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] + [text[cut:]]
        # a piece several prompts hold (conversations with the same tools starting together: their system
        # turn) is tokenized once: BFCL's first round tokenized 5.7M characters for 256 first prompts
        unique: dict[str, int] = {}
        if self.share_pieces:
            where = [unique.setdefault(piece, len(unique)) for piece in pieces]
            distinct = list(unique)
        else:
            where, distinct = list(range(len(pieces))), pieces
        self.stats["repeated_chars"] += sum(map(len, pieces)) - sum(map(len, distinct))
        for _, _, kind, bounds, _, _ in plans:
            self.stats["cached_chars" if kind == "cached" else "shared_chars"] += bounds[0]
        ids = self._tokenize(distinct) if distinct else []
        encoded = [ids[j] for j in where]
        out = []
        for key, text, _, bounds, head, first in plans:
            upto = list(head)
            for j, end in enumerate(bounds[1:]):
                upto += encoded[first + j]
                if end != bounds[-1]:  # a mark: keep the head for other keys' first prompts
                    self._keep(text[:end], upto)
            self._cache[key] = (text[: bounds[-1]], upto)
            out.append(upto + encoded[first + len(bounds) - 1])
        for kind in ("split", "cached", "shared"):
            sample = [i for i, p in enumerate(plans) if p[2] == kind][: self.VERIFY]
            if sample and not self.verified[kind]:
                self._verify(kind, [plans[i][1] for i in sample], [out[i] for i in sample])
        return out if self.enabled else self._whole(texts)

    #: a text with line boundaries between the kinds of characters pieces hold, for the start's probe
    LINES_PROBE = "\n".join(
        ('{"name": "a_b", "n": 10}', "x1", "Word.", "'quoted'", "99", "[1, 2]", "end!", "\ttab", "Ünï", "z")
    )

    def _tokenize(self, pieces: list[str]) -> list[list[int]]:
        """The ids of each piece, in one call to the tokenizer: a piece of :attr:`LINES_FROM` characters or
        more as its lines' ids end to end, each line not seen before tokenized once (:attr:`share_lines`)."""
        split = [
            split_lines(piece) if self.share_lines and len(piece) >= self.LINES_FROM else None
            for piece in pieces
        ]
        batch: list[str] = []  # the texts handed to the tokenizer: pieces as they are, and new lines once
        where: list[int] = []  # a piece's place in the batch (-1: line by line)
        lines_at: dict[str, int] = {}  # a new line -> its place in the batch
        for piece, lines in zip(pieces, split, strict=True):
            if lines is None:
                where.append(len(batch))
                batch.append(piece)
                continue
            where.append(-1)
            for line in lines:
                if line not in self._lines and line not in lines_at:
                    lines_at[line] = len(batch)
                    batch.append(line)
        self.stats["tokenized_chars"] += sum(map(len, batch))
        ids = self._ids(batch) if batch else []
        new_lines = {line: ids[j] for line, j in lines_at.items()}
        out = []
        for piece, lines, j in zip(pieces, split, where, strict=True):
            if lines is None:
                out.append(ids[j])
                continue
            got: list[int] = []
            for line in lines:
                known = self._lines.get(line)
                if known is None:
                    known = self._lines[line] = new_lines[line]
                else:
                    self._lines.move_to_end(line)
                    self.stats["line_chars"] += len(line)
                got += known
            out.append(got)
            self._line_split_pieces += 1
            n = self._line_split_pieces
            due = n <= self.LINES_VERIFY or n % self.LINES_VERIFY_EVERY == 0
            if due and not self._lines_match(piece, got):
                self.stats["tokenized_chars"] += sum(map(len, pieces))
                return self._ids(pieces)
        while len(self._lines) > self.LINES:
            self._lines.popitem(last=False)
        return out

    def _lines_probe(self, lines: list[str]) -> bool:
        """Whether this tokenizer gives :attr:`LINES_PROBE` the ids of its lines put end to end."""
        try:
            whole, *parts = self._call([self.LINES_PROBE, *lines])
        except Exception:  # noqa: BLE001 - a tokenizer that cannot take the probe: no lines
            return False
        return whole == [i for part in parts for i in part]

    def _lines_match(self, piece: str, got: list[int]) -> bool:
        """Whether a line-split piece's ids are its whole tokenization (the tokenizer's own call); if not,
        long pieces are tokenized whole from then on."""
        whole = self._call([piece])[0]
        if whole == got:
            return True
        log.info(
            "tokenizing a long piece line by line changed its ids (%d vs %d tokens): tokenizing long pieces whole",
            len(got), len(whole),
        )  # fmt: skip
        self.share_lines = False
        self._lines.clear()
        return False

    def _keep(self, head: str, ids: list[int]) -> None:
        if head not in self._heads:
            self._heads[head] = list(ids)
            while len(self._heads) > self.HEADS:
                self._heads.popitem(last=False)

    #: prompts compared with whole-prompt tokenization, per kind (a few: prompts are thousands of tokens)
    VERIFY = 4

    def _verify(self, kind: str, texts: list[str], got: list[list[int]]) -> None:
        if not self.enabled:
            return
        whole = self._call(texts)  # the reference: the tokenizer's own call
        bad = next((i for i, (a, b) in enumerate(zip(whole, got, strict=True)) if a != b), None)
        if bad is None:
            self.verified[kind] = True
            return
        log.warning(
            "tokenizing pieces at special tokens changed a prompt's ids (%d vs %d tokens, %s): tokenizing whole prompts",
            len(got[bad]), len(whole[bad]), kind,
        )  # fmt: skip
        self.enabled = False
        self._cache.clear()
        self._heads.clear()


class ReplyDecoder:
    """``decoder(list_of_ids)`` -> ``[tokenizer.decode(ids, skip_special_tokens=True) for ids in ...]``, in
    one call to the fast tokenizer's Rust backend (``decode_batch``, spread over its threads) where that
    gives the same texts: no ``clean_up_tokenization_spaces`` (which the tokenizer applies after its
    backend), and checked -- the first :attr:`VERIFY` replies are also decoded one by one by the tokenizer
    and compared; on any difference it logs why and decodes one by one from then on."""

    VERIFY = 8

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        usable = backend is not None and hasattr(backend, "decode_batch")
        self._batch = (
            backend.decode_batch
            if usable and not getattr(tokenizer, "clean_up_tokenization_spaces", False)
            else None
        )
        self.verified = 0

    def _one_by_one(self, generated: Sequence[Sequence[int]]) -> list[str]:
        return [self.tokenizer.decode(list(ids), skip_special_tokens=True) for ids in generated]

    def __call__(self, generated: Sequence[Sequence[int]]) -> list[str]:
        if self._batch is None or not generated:
            return self._one_by_one(generated)
        texts = self._batch([list(ids) for ids in generated], skip_special_tokens=True)
        if self.verified < self.VERIFY:
            n = self.VERIFY - self.verified
            reference = self._one_by_one(generated[:n])
            bad = next((i for i, (a, b) in enumerate(zip(texts, reference, strict=False)) if a != b), None)
            if bad is not None:
                log.warning(
                    "the backend's batch decoding changed a reply (%r vs %r): decoding one by one",
                    texts[bad][:80], reference[bad][:80],
                )  # fmt: skip
                self._batch = None
                return self._one_by_one(generated)
            self.verified += len(reference)
        return texts
