from __future__ import annotations

import pytest
import torch

from evaluation.generation.generate import generate, render_prompt, stop_token_ids


def _force(model, tokenizer, script: str):
    """Make the model emit ``script``'s tokens greedily, whatever the prompt (all rows in lockstep)."""
    target = tokenizer(script, add_special_tokens=False)["input_ids"]
    original = model.forward
    state = {"step": 0}

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        token = target[min(state["step"], len(target) - 1)]
        forced = torch.full_like(out.logits[:, -1, :], -1e4)
        forced[:, token] = 1e4
        out.logits[:, -1, :] = forced
        state["step"] += 1
        return out

    model.forward = forward
    return state, original


def test_forced_output_is_returned_up_to_end_of_turn(tokenizer, tiny_model):
    call = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    state, original = _force(tiny_model, tokenizer, call + "<|im_end|>after the end")
    try:
        prompts = [
            {
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "f", "description": "d", "parameters": {}}],
            },
            "a much longer raw prompt " * 5,
        ]
        outputs = generate(tiny_model, tokenizer, prompts, max_new_tokens=40, batch_size=2)
    finally:
        tiny_model.forward = original
    assert outputs == [call, call]  # both rows (different lengths, left padded) stop at <|im_end|>
    assert state["step"] < 40  # generation stopped early instead of running to max_new_tokens


def test_max_new_tokens_bounds_output(tokenizer, tiny_model):
    _, original = _force(tiny_model, tokenizer, "x" * 100)
    try:
        [out] = generate(tiny_model, tokenizer, ["prompt"], max_new_tokens=5, batch_size=1)
    finally:
        tiny_model.forward = original
    assert 1 <= len(tokenizer(out, add_special_tokens=False)["input_ids"]) <= 5


def test_batched_equals_one_by_one_and_order_is_kept(tokenizer, tiny_model):
    prompts = ["short", "a somewhat longer prompt with more tokens in it", "mid length prompt"]
    batched = generate(tiny_model, tokenizer, prompts, max_new_tokens=6, batch_size=3)
    single = [generate(tiny_model, tokenizer, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == single and any(batched)  # real text, not all empty
    assert tiny_model.training is False


def test_chat_prompt_uses_the_template_with_tools(tokenizer):
    text = render_prompt(
        tokenizer,
        {"messages": [{"role": "user", "content": "hello"}], "tools": [{"name": "tool_x", "parameters": {}}]},
    )
    assert "tool_x" in text and text.endswith("<|im_start|>assistant\n")
    assert stop_token_ids(tokenizer) == [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
    ]


def test_bad_arguments(tokenizer, tiny_model):
    assert generate(tiny_model, tokenizer, [], max_new_tokens=4) == []
    with pytest.raises(ValueError):
        generate(tiny_model, tokenizer, ["x"], max_new_tokens=0)


def test_a_prompt_past_the_tokenizers_max_length_logs_no_transformers_warning(tokenizer, tiny_model):
    """The bound that matters is the model's positions (skip_too_long, counted by the callers), so the
    tokenizer's own "Token indices sequence length is longer than ..." warning would only be noise."""
    import copy
    import logging

    tok = copy.deepcopy(tokenizer)  # the warning is given once per tokenizer: a fresh one
    tok.model_max_length = 4
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        [out] = generate(
            tiny_model, tok, ["a prompt of more than four tokens"], max_new_tokens=2, batch_size=1
        )
        assert isinstance(out, str) and records == []
        tok("a prompt of more than four tokens again")  # the warning it would be, and that it is caught
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1 and "Token indices sequence length" in records[0].getMessage()
