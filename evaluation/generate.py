"""Batched greedy generation for benchmark prompts (CPU or CUDA).

Prompts are either ready strings or chat conversations ``{"messages": [...], "tools": [...]}`` that
the tokenizer's chat template renders (with ``add_generation_prompt=True``). Batches are left-padded
so every row's next token sits in the last column; decoding is greedy and stops at the tokenizer's
EOS or ``<|im_end|>`` (end of an assistant turn), whichever comes first. Outputs are returned in
input order, special tokens removed (``<tool_call>`` tags are ordinary added tokens and survive).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Conversation = dict[str, Any]
END_OF_TURN = "<|im_end|>"


def render_prompt(tokenizer: Any, prompt: str | Conversation | list[dict]) -> str:
    """Prompt text for one input: strings pass through, conversations go through the chat template."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # bare message list
        prompt = {"messages": prompt}
    tools = prompt.get("tools") or None
    return tokenizer.apply_chat_template(
        prompt["messages"], tools=tools, add_generation_prompt=True, tokenize=False
    )


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
) -> list[str]:
    """Greedy completions for ``prompts`` (same order), at most ``max_new_tokens`` tokens each."""
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be >= 1")
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    if not texts:
        return []
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    # Similar lengths share a batch, so little compute goes to padding.
    order = sorted(range(len(texts)), key=lambda index: len(encoded[index]))
    outputs: list[str] = [""] * len(texts)
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
                    ids = encoded[index]
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
                    outputs[index] = _decode_new(tokenizer, generated[row, width:].tolist(), stops)
    finally:
        model.train(was_training)
    return outputs


def _decode_new(tokenizer: Any, ids: list[int], stops: list[int]) -> str:
    """Text of the generated ids up to (not including) the first stop token."""
    for position, token in enumerate(ids):
        if token in stops:
            ids = ids[:position]
            break
    return tokenizer.decode(ids, skip_special_tokens=True)
