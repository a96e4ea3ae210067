"""Rendering and tokenizing keyed prompts in worker processes, off the interpreter that drives the GPU.

A multi-turn round's prompts are rendered (a chat template: Python) and tokenized before the round can
start, with the GPU idle; in one process that is one core's work under one GIL (on an H200 host, ~2-3 s of
BFCL's ~16 s multi-turn run). :class:`EncoderPool` spreads it over worker processes, each key (a
conversation) always on the same worker, which keeps the conversation's messages, its tool set, a
:class:`~evaluation.generation.render.ToolRenderer` and an
:class:`~evaluation.generation.encode.IncrementalEncoder` of its own. What travels is small: a key's new
messages since the last prompt (a conversation's messages only grow; its tools travel when they change),
and back, the ids past what the key's previous prompt's ids share (``(keep, tail)``).

Exactness is checked, not assumed: the workers' renderer and encoder check themselves as in-process ones
do, and the pool renders and tokenizes one prompt in :attr:`EncoderPool.VERIFY_EVERY` (the first one
included) here, the tokenizer's own way, and compares; on a difference (or a worker that fails) it logs why
and the caller encodes in-process from then on (:attr:`EncoderPool.enabled` false).

Opt-in (``ChatSession(encode_workers=N)``, ``run_conversations(encode_workers=N)``) and not yet shown to
pay: on the 2-core CPU VM it was slower (see :func:`evaluation.bfcl.multi_turn.run_conversations`); it is
for a GPU machine's many cores, where it is still to be measured.

Workers start with the ``spawn`` method (the caller holds CUDA and threads, which a forked child must
not inherit); until every worker has started (imports, the tokenizer unpickled) the caller encodes
in-process (:meth:`EncoderPool.ready`), so the start-up overlaps the first rounds.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from evaluation.generation.prefix_cache import common_prefix

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the worker's side
_STATE: dict[str, Any] = {}


def _start(blob: bytes) -> None:
    from evaluation.generation.encode import IncrementalEncoder
    from evaluation.generation.render import ToolRenderer

    tokenizer = pickle.loads(blob)
    _STATE.update(
        tokenizer=tokenizer,
        renderer=ToolRenderer(tokenizer),
        encoder=IncrementalEncoder(tokenizer),
        convs={},
    )


def _ping() -> bool:
    return bool(_STATE)


Item = tuple[Hashable, int, list[dict], tuple[Any] | None]


def _encode(items: list[Item], drop: list[Hashable]) -> list[tuple[int, list[int]]]:
    """Per item ``(key, known, new_messages, tools)``: the key's messages are its first ``known`` (0: a
    conversation anew) and then ``new_messages``; ``tools``, when not ``None``, is ``(its tools,)``; its
    prompt rendered and tokenized; back ``(keep, tail)``: its ids are the first ``keep`` of the key's
    previous ids (none when ``known`` is 0) and then ``tail``."""
    convs, encoder = _STATE["convs"], _STATE["encoder"]
    for key in drop:
        convs.pop(key, None)
        encoder.forget(key)
        _STATE["renderer"].forget(key)
    texts = []
    for key, known, new, tools in items:
        if not known or key not in convs:
            convs[key] = {"messages": [], "tools": None, "ids": []}
        conv = convs[key]
        del conv["messages"][known:]
        conv["messages"].extend(new)
        if tools is not None:
            conv["tools"] = tools[0]
        prompt = {"messages": conv["messages"], "tools": conv["tools"]} if conv["tools"] else conv["messages"]
        texts.append(_STATE["renderer"].render(prompt, key))
    out = []
    for (key, *_), ids in zip(items, encoder.encode(texts, [key for key, *_ in items]), strict=True):
        conv = convs[key]
        keep = common_prefix(conv["ids"], ids)
        conv["ids"] = ids
        out.append((keep, ids[keep:]))
    return out


# --------------------------------------------------------------------------- the caller's side
class EncoderPool:
    """``encode(prompts, keys)`` -> the ids ``ChatSession.encode`` gives, rendered and tokenized in
    ``workers`` processes (see the module docstring). Prompts are ``{"messages": [...], "tools": [...]}``
    (or bare message lists) whose messages only grow per key, as a conversation's do."""

    #: one prompt in this many (the first included) also encoded here and compared
    VERIFY_EVERY = 256

    def __init__(self, tokenizer: Any, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.tokenizer = tokenizer
        self.enabled = True
        context = multiprocessing.get_context("spawn")
        blob = pickle.dumps(tokenizer)
        self._workers = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(blob,))
            for _ in range(workers)
        ]
        self._started = [w.submit(_ping) for w in self._workers]
        #: key -> (messages sent, the last message sent, the tools sent, the ids it got)
        self._sent: dict[Hashable, tuple[int, Any, Any, list[int]]] = {}
        self._drop: list[list[Hashable]] = [[] for _ in self._workers]
        self.encoded = 0  # prompts encoded by the workers
        self.verified = 0

    def ready(self) -> bool:
        """Every worker has started (until then the caller encodes in-process)."""
        return self.enabled and all(f.done() for f in self._started)

    def _worker(self, key: Hashable) -> int:
        return (key if isinstance(key, int) else hash(key)) % len(self._workers)

    def encode(self, prompts: Sequence[Any], keys: Sequence[Hashable], local: Any) -> list[list[int]]:
        """The prompts' ids; ``local(prompts)`` encodes the ones to check (the tokenizer's own way here)."""
        batches: list[list[int]] = [[] for _ in self._workers]
        items: list[Item] = []
        for j, (prompt, key) in enumerate(zip(prompts, keys, strict=True)):
            messages = prompt if isinstance(prompt, list) else prompt["messages"]
            tools = None if isinstance(prompt, list) else prompt.get("tools")
            known, last, sent_tools, _ = self._sent.get(key, (0, None, None, []))
            if known > len(messages) or (known and messages[known - 1] is not last):
                known = 0  # not the same conversation grown: all of it again
            changed = not known or tools is not sent_tools
            items.append((key, known, list(messages[known:]), (tools,) if changed else None))
            batches[self._worker(key)].append(j)
        futures: list[tuple[list[int], Future]] = []
        for w, members in enumerate(batches):
            if members:
                drop, self._drop[w] = self._drop[w], []
                futures.append((members, self._workers[w].submit(_encode, [items[j] for j in members], drop)))
        out: list[list[int] | None] = [None] * len(prompts)
        try:
            for members, future in futures:
                for j, (keep, tail) in zip(members, future.result(), strict=True):
                    key = items[j][0]
                    previous = self._sent.get(key, (0, None, None, []))[3] if items[j][1] else []
                    out[j] = previous[:keep] + tail
        except Exception as e:  # noqa: BLE001 - a worker that failed: in-process from now on
            log.warning("an encoder worker failed (%s): encoding in-process", e)
            self.close()
            return local(prompts)
        for j, (prompt, key) in enumerate(zip(prompts, keys, strict=True)):
            messages = prompt if isinstance(prompt, list) else prompt["messages"]
            tools = None if isinstance(prompt, list) else prompt.get("tools")
            self._sent[key] = (len(messages), messages[-1] if messages else None, tools, out[j])
        check = [j for j in range(len(prompts)) if (self.encoded + j) % self.VERIFY_EVERY == 0]
        self.encoded += len(prompts)
        if check:
            reference = local([prompts[j] for j in check])
            bad = next((j for j, ids in zip(check, reference, strict=True) if out[j] != ids), None)
            if bad is not None:
                log.warning(
                    "the encoder workers' ids differ from this process's for a prompt (%d vs %d tokens): "
                    "encoding in-process",
                    len(out[bad]), len(reference[check.index(bad)]),
                )  # fmt: skip
                self.close()
                return local(prompts)
            self.verified += len(check)
        return out  # type: ignore[return-value]

    def forget(self, key: Hashable) -> None:
        """The key's conversation ended: its worker drops it with the next request."""
        if self._sent.pop(key, None) is not None and self.enabled:
            self._drop[self._worker(key)].append(key)

    def close(self) -> None:
        """Stop the workers and wait for them (the caller encodes in-process from then on)."""
        self.enabled = False
        for worker in self._workers:
            worker.shutdown(wait=True, cancel_futures=True)
