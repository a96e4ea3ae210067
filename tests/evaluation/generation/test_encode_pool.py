"""EncoderPool: keyed prompts rendered and tokenized in worker processes give the ids this process gives
(the tokenizer's own way), with only new messages sent and the ids' new tail returned; a conversation that
did not just grow, a changed tool set and a forgotten key are handled; a difference found by the sampled
check turns the pool off and the call's ids come from this process."""

from __future__ import annotations

import logging

import pytest

from evaluation.generation.encode_pool import EncoderPool
from evaluation.generation.render import render_prompt
from tests.evaluation.generation.test_encode import TOOLS, _conversations


def _reference(tokenizer):
    def encode(prompts):
        texts = [render_prompt(tokenizer, p) for p in prompts]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    return encode


@pytest.fixture()
def pool(tokenizer):
    pool = EncoderPool(tokenizer, 2)
    for started in pool._started:  # the workers' start-up (spawn, imports), waited for here
        assert started.result(timeout=120)
    assert pool.ready()
    yield pool
    pool.close()


def test_the_pool_gives_this_processs_ids_round_after_round(tokenizer, pool, monkeypatch):
    reference = _reference(tokenizer)
    checked = []
    monkeypatch.setattr(pool, "VERIFY_EVERY", 5)

    def local(prompts):
        checked.append(len(prompts))
        return reference(prompts)

    histories = _conversations(4)  # three conversations, growing
    other_tools = [{**t, "name": t["name"] + "_v2"} for t in TOOLS]
    keys = [0, 1, 2]
    for r in range(5):
        tools = [TOOLS, TOOLS, other_tools if r >= 2 else TOOLS]  # key 2's tools change at round 2
        prompts = [{"messages": h[r], "tools": t} for h, t in zip(histories, tools, strict=True)]
        assert pool.encode(prompts, keys, local) == reference(prompts), f"round {r}"
    assert pool.enabled and pool.encoded == 15 and sum(checked) == 3  # prompts 0, 5, 10 checked
    # after the first round only new messages travelled: the workers' answers were tails
    sent = pool._sent[0]
    assert sent[0] == len(histories[0][4]) and sent[2] is TOOLS
    # a conversation that did not grow from what was sent (edited history): all of it again
    edited = [{"messages": [{"role": "user", "content": "new start"}], "tools": TOOLS}]
    assert pool.encode(edited, [1], local) == reference(edited)
    # a forgotten key starts anew on its worker
    pool.forget(0)
    again = [{"messages": histories[0][1], "tools": TOOLS}]
    assert pool.encode(again, [0], local) == reference(again)


def test_a_difference_in_the_check_turns_the_pool_off(tokenizer, pool, caplog):
    reference = _reference(tokenizer)
    prompts = [{"messages": h[1], "tools": TOOLS} for h in _conversations(1)]

    def wrong(prompts):
        return [ids + [0] for ids in reference(prompts)]

    with caplog.at_level(logging.WARNING):
        assert pool.encode(prompts, [0, 1, 2], wrong) == wrong(prompts)  # the call's ids from here
    assert not pool.enabled and not pool.ready() and "encoding in-process" in caplog.text


def test_a_chat_session_encodes_on_its_pool_once_started(tokenizer, gqa_model):
    from evaluation.generation.generate import ChatSession

    plain = ChatSession(gqa_model, tokenizer, 4, 2)
    pooled = ChatSession(gqa_model, tokenizer, 4, 2, encode_workers=1)
    try:
        for started in pooled.pool._started:
            started.result(timeout=120)
        for r in range(3):
            prompts = [{"messages": h[r], "tools": TOOLS} for h in _conversations(2)]
            assert pooled.encode(prompts, ["a", "b", "c"]) == plain.encode(prompts, ["a", "b", "c"])
        assert pooled.pool.encoded == 9
        pooled.forget("a")
        assert "a" not in pooled.pool._sent
    finally:
        pooled.close()
    assert not pooled.pool.enabled
