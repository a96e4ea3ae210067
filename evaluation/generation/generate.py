"""Batched greedy generation for benchmark prompts (CPU or CUDA).

Prompts are either ready strings or chat conversations ``{"messages": [...], "tools": [...]}`` that
the tokenizer's chat template renders (with ``add_generation_prompt=True``). Batches are left-padded
so every row's next token sits in the last column; decoding is greedy and stops at the tokenizer's
EOS or ``<|im_end|>`` (end of an assistant turn), whichever comes first. Outputs are returned in
input order, special tokens removed (``<tool_call>`` tags are ordinary added tokens and survive).

Decoding runs on :mod:`evaluation.generation.engine` (static KV cache, continuous batching, CUDA graphs) when
the model is one it supports, else on ``model.generate`` (left-padded batches); both are greedy and
give the same tokens (exactly in fp32). ``batch_size`` is the number of sequences decoded together.

:class:`ChatSession` is for prompts that come back round after round (multi-turn evaluation): one
engine whose KV cache keeps each conversation (a key) between calls, so a round prefills only the
tokens its prompt does not share with what the cache holds.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch.profiler import record_function

from evaluation.generation.encode import IncrementalEncoder, ReplyDecoder
from evaluation.generation.engine import Engine, EngineConfig, EngineUnsupported, check_supported
from evaluation.generation.render import ToolRenderer, render_prompt

Conversation = dict[str, Any]
END_OF_TURN = "<|im_end|>"


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end generation: EOS and the end-of-turn token when the vocabulary has it."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id and end_of_turn not in ids:
        ids.append(end_of_turn)
    if not ids:
        raise ValueError("tokenizer has neither an eos_token nor <|im_end|>: generation would never stop")
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str | Conversation | list[dict]],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    *,
    stop_strings: Sequence[str] = (),
    use_engine: bool = True,
    engine_config: EngineConfig | None = None,
    skip_too_long: bool = False,
) -> list[str]:
    """Greedy completions for ``prompts`` (same order), at most ``max_new_tokens`` tokens each.

    ``stop_strings`` also end a completion, which is cut before the first of them (on the engine
    they stop decoding early when the model emits their usual tokenization). ``use_engine=False``
    forces the ``model.generate`` path; ``engine_config``: the engine's knobs (``slots`` is
    ``batch_size``). ``skip_too_long``: a prompt whose tokens and ``max_new_tokens`` exceed the model's
    positions (:func:`context_limit`) is not generated and its entry is ``None``; by default it runs past
    them, which a RoPE model does without a word and a model with learned positions cannot.
    """
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be >= 1")
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    if not texts:
        return []
    # verbose=False: no transformers warning for a prompt past the tokenizer's model_max_length; the bound
    # that matters is the model's positions, checked below (skip_too_long) and counted by the callers
    encoded = [tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] for text in texts]
    limit = context_limit(model) if skip_too_long else None
    if limit is None:
        return _generate_encoded(model, tokenizer, encoded, max_new_tokens, batch_size, stop_strings, use_engine,
                                 engine_config)  # fmt: skip
    keep = [i for i, ids in enumerate(encoded) if len(ids) + max_new_tokens <= limit]
    out: list[str | None] = [None] * len(encoded)
    if keep:
        kept = [encoded[i] for i in keep]
        texts = _generate_encoded(model, tokenizer, kept, max_new_tokens, batch_size, stop_strings, use_engine,
                                  engine_config)  # fmt: skip
        for i, text in zip(keep, texts, strict=True):
            out[i] = text
    return out  # type: ignore[return-value]


def context_limit(model: Any) -> int | None:
    """The positions ``model`` was built for (``config.max_position_embeddings``), ``None`` when unknown."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def _generate_encoded(
    model: Any,
    tokenizer: Any,
    encoded: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str],
    use_engine: bool,
    engine_config: EngineConfig | None,
) -> list[str]:
    stops = stop_token_ids(tokenizer)
    if use_engine and all(encoded) and engine_supported(model):
        sequences = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in stop_strings if s]
        config = dataclasses.replace(engine_config or EngineConfig(), slots=batch_size)
        engine = Engine(model, stops, sequences, config)
        generated = engine.generate_ids(encoded, max_new_tokens)
        return [truncate_at_stop(_decode_new(tokenizer, ids, stops), stop_strings) for ids in generated]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    generated = hf_generate_ids(model, encoded, stops, pad_id, max_new_tokens, batch_size)
    return [truncate_at_stop(_decode_new(tokenizer, ids, stops), stop_strings) for ids in generated]


class ChatSession:
    """Greedy replies, like :func:`generate` on the engine, for keyed prompts whose cache persists
    between calls (see :meth:`Engine.generate_ids`). Raises :class:`EngineUnsupported` for a model
    the engine does not run. ``slots``: conversations whose K/V is kept (more keys than slots evict
    the least recently used); ``config``: the engine's other knobs. ``engine.totals`` counts the
    tokens prefilled, reused and copied, over every call."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int,
        slots: int,
        *,
        stop_strings: Sequence[str] = (),
        config: EngineConfig | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.stop_strings = tuple(stop_strings)
        self.stops = stop_token_ids(tokenizer)
        sequences = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in stop_strings if s]
        config = dataclasses.replace(config or EngineConfig(), slots=slots)
        self.engine = Engine(model, self.stops, sequences, config)
        self.encoder = IncrementalEncoder(tokenizer)
        self.decoder = ReplyDecoder(tokenizer)
        self.renderer = ToolRenderer(tokenizer)
        #: held while the tokenizer, the renderer or the encoder is in use: a caller may encode from
        #: another thread (prompts prepared ahead) while this one decodes replies
        self.lock = threading.RLock()

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt a slot can take with ``max_new_tokens`` after it (within the model's
        positions, ``EngineConfig.max_len`` and the cache's memory budget)."""
        return self.engine.max_slot_positions() - self.max_new_tokens

    def encode(
        self, prompts: Sequence[str | Conversation | list[dict]], keys: Sequence[Hashable] | None = None
    ) -> list[list[int]]:
        """Token ids of the rendered prompts (as :func:`generate` encodes them), in one batch call (a
        fast tokenizer spreads it over its threads). With ``keys`` (one per prompt: the conversation),
        a prompt that extends its key's previous one tokenizes only the new text
        (:class:`evaluation.generation.encode.IncrementalEncoder`; same ids, checked). A tool set's
        schemas are formatted once (:class:`evaluation.generation.render.ToolRenderer`; same text, checked)."""
        if not prompts:
            return []
        with self.lock:
            with record_function("session.render"):  # phases named for the profiler's timeline
                texts = [
                    self.renderer.render(prompt, key)
                    for prompt, key in zip(prompts, keys or [None] * len(prompts), strict=True)
                ]
            with record_function("session.tokenize"):
                return self.encoder.encode(texts, keys)

    def forget(self, key: Hashable) -> None:
        """``key``'s conversation ended: its encoder and renderer state goes."""
        with self.lock:
            self.encoder.forget(key)
            self.renderer.forget(key)

    def generate(
        self,
        encoded: Sequence[Sequence[int]],
        keys: Sequence[Hashable] | None,
        on_decode: Callable[[], None] | None = None,
    ) -> list[str]:
        """Replies to ``encoded`` prompts (from :meth:`encode`), one distinct key per prompt (``None``:
        no reuse, every prompt prefilled from its first token, as :func:`generate` does). ``on_decode``:
        called once when the first decode steps are queued (:meth:`Engine.generate_ids`)."""
        ids = self.engine.generate_ids(encoded, self.max_new_tokens, keys=keys, on_decode=on_decode)
        with record_function("session.decode"), self.lock:
            return self.decode(ids)

    def decode(self, generated: Sequence[Sequence[int]]) -> list[str]:
        """Reply texts of generated ids (up to the first stop token or stop string), in one batch call
        (:class:`evaluation.generation.encode.ReplyDecoder`)."""
        texts = self.decoder([_until_stop(list(ids), self.stops, keep=False) for ids in generated])
        return [truncate_at_stop(text, self.stop_strings) for text in texts]


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop string."""
    cut = min((i for s in stop_strings if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def engine_supported(model: Any) -> bool:
    """Whether ``model`` runs on the engine (else :func:`generate` falls back to ``model.generate``)."""
    try:
        check_supported(model)
    except EngineUnsupported:
        return False
    return True


def hf_generate_ids(
    model: Any,
    encoded: Sequence[Sequence[int]],
    stops: list[int],
    pad_id: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[list[int]]:
    """The reference path: ``model.generate`` (greedy) on left-padded batches of similar length.

    Returns the generated ids per prompt (input order) up to and including the first stop token.
    """
    device = next(model.parameters()).device
    # Similar lengths share a batch, so little compute goes to padding.
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
    outputs: list[list[int]] = [[] for _ in encoded]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(encoded[index]) for index in chunk)
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, index in enumerate(chunk):
                    ids = list(encoded[index])
                    if ids:
                        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                        attention[row, width - len(ids) :] = 1
                generated = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                )
                for row, index in enumerate(chunk):
                    outputs[index] = _until_stop(generated[row, width:].tolist(), stops)
    finally:
        model.train(was_training)
    return outputs


def _until_stop(ids: list[int], stops: list[int], keep: bool = True) -> list[int]:
    """``ids`` up to their first stop token, included (``keep``) or not."""
    for position, token in enumerate(ids):
        if token in stops:
            return ids[: position + keep]
    return ids


def _decode_new(tokenizer: Any, ids: list[int], stops: list[int]) -> str:
    """Text of the generated ids up to (not including) the first stop token."""
    return tokenizer.decode(_until_stop(ids, stops, keep=False), skip_special_tokens=True)
