"""KV reuse across calls (keyed requests): the slot table's choices, and exactly ``model.generate``'s
greedy tokens (fp32, CPU) whatever was reused, copied or evicted."""

from __future__ import annotations

import dataclasses
import random
import sys
import threading
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from evaluation.generation.engine import Engine, EngineConfig
from evaluation.generation.generate import hf_generate_ids
from evaluation.generation.prefix_cache import BLOCK, SlotTable, block_hashes, common_prefix, shared_tokens

STOPS = [1, 2]
MAX_NEW = 12


# ----------------------------------------------------------------------------------- bookkeeping
def test_common_prefix_and_block_hashes():
    a = list(range(200))
    assert common_prefix(a, a) == 200 and common_prefix(a, a[:77]) == 77 and common_prefix([], a) == 0
    assert common_prefix(a, a[:130] + [-1] + a[131:]) == 130
    hashes = block_hashes(a)
    assert len(hashes) == 200 // BLOCK and block_hashes(a[:40]) == hashes[: 40 // BLOCK]
    assert (
        block_hashes([-5] + a[1:])[0] != hashes[0] and block_hashes([-5] + a[1:])[1] != hashes[1]
    )  # chained
    assert shared_tokens(block_hashes(a[:100] + [7] * 50), set(hashes)) == 100 // BLOCK * BLOCK
    # bisected: the same depth as walking the blocks one by one, whatever the group holds
    rng = random.Random(3)
    for _ in range(200):
        group = [
            a[: rng.randrange(201)] + [rng.randrange(9) for _ in range(rng.randrange(60))] for _ in range(3)
        ]
        others = {h for g in group for h in block_hashes(g)}
        prompt = block_hashes(a[: rng.randrange(201)] + [-1] * rng.randrange(40))
        walked = next((d for d, h in enumerate(prompt) if h not in others), len(prompt))
        assert shared_tokens(prompt, others) == walked * BLOCK
    assert shared_tokens([], {1}) == 0 and shared_tokens(hashes, set()) == 0


def _plan(table, prompt, key, free, busy=(), waiting=()):
    return table.plan(prompt, block_hashes(prompt), key, set(free), set(busy), set(waiting))


def test_an_admission_compares_a_prompt_with_its_slot_once(monkeypatch):
    """A keyed prompt's hashes, plan and store ask how much of it the key's slot holds: compared once,
    and compared anew once the slot's ids change. The hashes equal those from scratch."""
    import evaluation.generation.prefix_cache as pc

    calls = []
    monkeypatch.setattr(
        pc, "common_prefix", lambda a, b, step=64: calls.append(1) or common_prefix(a, b, step)
    )
    table = SlotTable(2, share_min_tokens=16)
    first = list(range(100))
    plan = table.plan(first, table.hashes(first, "k"), "k", {0, 1}, set(), set())
    table.assign(plan, "k")
    table.store(plan.slot, first)
    grown = first[:90] + list(range(500, 560))
    calls.clear()
    hashes = table.hashes(grown, "k")
    assert hashes == block_hashes(grown)
    plan = table.plan(grown, hashes, "k", {0, 1}, set(), set())
    assert plan.reused == 90 and len(calls) == 1
    table.store(plan.slot, grown)
    assert len(calls) == 1 and table._hashes[plan.slot] == block_hashes(grown)
    table.extend(plan.slot, [7, 8])  # the slot's ids changed: a new comparison
    assert table.common(plan.slot, grown) == len(grown) and len(calls) == 2


def test_incremental_hashes_and_index_equal_a_rebuild():
    """Hashes reused over a shared prefix equal hashes from scratch, and after any sequence of stores the
    index (hash -> slots) is the one a rebuild from every slot's ids gives."""
    rng = random.Random(1)
    base = [rng.randrange(50) for _ in range(200)]
    for cut in (0, 5, 16, 17, 100, 200):
        grown = base[:cut] + [rng.randrange(50) for _ in range(rng.randrange(80))]
        assert block_hashes(grown, known=base, known_hashes=block_hashes(base)) == block_hashes(grown)
    table = SlotTable(3, share_min_tokens=16)
    for _ in range(60):
        slot = rng.randrange(3)
        held = table.ids[slot]
        keep = rng.randrange(len(held) + 1)
        if rng.random() < 0.3:  # a generation's tokens after what the slot holds
            table.extend(slot, [rng.randrange(50) for _ in range(rng.randrange(40))])
        else:
            ids = held[:keep] + [rng.randrange(50) for _ in range(rng.randrange(70))]
            # as the engine stores an admitted prompt: with the hashes its plan computed, or without
            table.store(slot, ids, block_hashes(ids) if rng.random() < 0.5 else None)
        rebuilt: dict[int, set[int]] = {}
        for s in range(3):
            assert table._hashes[s] == block_hashes(table.ids[s])
            for h in table._hashes[s]:
                rebuilt.setdefault(h, set()).add(s)
        assert table._index == rebuilt
    table.assign(table.plan(table.ids[0] + [1] * 20, block_hashes(table.ids[0]), "k", {0}, set(), set()), "k")
    grown = table.ids[0] + [7] * 40
    assert table.hashes(grown, "k") == block_hashes(grown) and table.hashes(grown, "other") == block_hashes(
        grown
    )


def test_slot_table_reuses_copies_and_evicts():
    table = SlotTable(slots=3, share_min_tokens=16)
    system, other = list(range(100, 164)), list(range(300, 364))
    first = _plan(table, system + [1, 2, 3], "a", [0, 1, 2])
    assert (first.slot, first.reused, first.start, first.source, first.evicts) == (0, 0, 0, None, None)
    table.assign(first, "a")
    table.store(0, system + [1, 2, 3, 9, 9])
    again = _plan(table, system + [1, 2, 3, 9, 4], "a", [0, 1, 2])  # its own slot, up to the divergence
    assert (again.slot, again.reused, again.start, again.source) == (0, 68, 68, None)
    same = _plan(table, system + [1, 2, 3, 9, 9], "a", [0, 1, 2])
    assert same.start == len(system) + 4  # the last token is always recomputed
    new = _plan(table, system + [5], "b", [1, 2])  # another key: copies the shared system prompt
    assert (new.slot, new.reused, new.start, new.source) == (1, 0, 64, 0)
    assert _plan(table, system + [5], "b", [1, 2], busy=[0]).source is None  # slot 0 about to be rewritten
    assert _plan(table, other + [5], "b", [1, 2]).source is None  # nothing shared
    table.share_min_tokens = 80  # 64 shared tokens: below the threshold, recomputed
    assert _plan(table, system + [5], "b", [1, 2]).source is None
    table.share_min_tokens = 16
    table.assign(new, "b")
    table.store(1, system + [5])
    table.assign(_plan(table, other, "c", [2]), "c")
    table.store(2, other)
    # Full: a new key evicts; a slot holding its prefix first, else the least recently used whose key is not waiting.
    holder = _plan(table, other + [8], "d", [0, 1, 2])
    assert (holder.slot, holder.evicts, holder.reused) == (2, "c", 64)
    lru = _plan(table, [7] * 40, "d", [0, 1, 2], waiting=["a"])
    assert (lru.slot, lru.evicts) == (1, "b")
    table.assign(lru, "d")
    assert table.slot_of == {"a": 0, "d": 1, "c": 2} and table.keys == ["a", "d", "c"]


# --------------------------------------------------------------------------- engine exactness
def _reference(model, prompts):
    return [
        hf_generate_ids(model, [p], STOPS, 0, MAX_NEW, 1)[0] for p in prompts
    ]  # one at a time: no padding


@pytest.fixture(scope="module")
def rounds(gqa_model):
    """Three rounds of keyed prompts, each built like a multi-turn conversation: two system prompts
    shared by several keys (one of them longer than a FlexAttention block); round r+1 = round r's prompt + its reply + new tokens; in round 2 key 1's
    earlier reply is "rendered" differently (one token changed mid-way) and key 9 is new.
    Each round: (keys, prompts, model.generate's outputs)."""
    rng = random.Random(0)
    system = {0: [rng.randrange(3, 300) for _ in range(140)], 1: [rng.randrange(3, 300) for _ in range(45)]}
    prompts = {
        k: system[k % 2] + [rng.randrange(3, 300) for _ in range(rng.randint(5, 20))] for k in range(5)
    }
    out = []
    for r in range(3):
        keys = sorted(prompts)
        batch = [prompts[k] for k in keys]
        replies = _reference(gqa_model, batch)
        out.append((keys, batch, replies))
        for key, reply in zip(keys, replies, strict=True):
            reply = reply[:-1] if reply[-1] in STOPS else reply
            prompts[key] = (
                prompts[key] + reply + [7] + [rng.randrange(3, 300) for _ in range(rng.randint(3, 10))]
            )
        if r == 1:
            diverged = list(prompts[1])
            diverged[len(batch[1]) - 4] = 3 + (diverged[len(batch[1]) - 4] + 1) % 297
            prompts[1] = diverged
            prompts[9] = system[0] + [5, 6, 7]
            del prompts[3]
    return out


KEEPING = EngineConfig(slots=8, share_min_tokens=16, attend_bucket=8)  # every key keeps its slot; cache grows
EVICTING = dataclasses.replace(KEEPING, slots=2, sync_every=3, prefill_tokens=60)


def _position_bytes(model) -> int:
    """K/V bytes of one cache position of one slot (every layer, keys and values)."""
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    return (
        cfg.num_hidden_layers
        * 2
        * cfg.num_key_value_heads
        * head_dim
        * next(model.parameters()).element_size()
    )


def test_a_cache_budget_runs_the_keyed_rounds_in_fewer_slots(gqa_model, rounds):
    """``max_cache_bytes`` for 3 slots of the first round's length: the rounds run in at most 3 slots, in
    fewer as the prompts grow (the last slots dropped, their keys prefilled afresh), the same tokens."""
    per = _position_bytes(gqa_model)
    need = -(-(max(map(len, rounds[0][1])) + MAX_NEW) // KEEPING.attend_bucket) * KEEPING.attend_bucket
    engine = Engine(gqa_model, STOPS, config=dataclasses.replace(KEEPING, max_cache_bytes=3 * need * per))
    slots = []
    for r, (keys, prompts, reference) in enumerate(rounds):
        assert engine.generate_ids(prompts, MAX_NEW, keys=keys) == reference, f"round {r}"
        slots.append(engine.stats["slots"])
        assert engine._keyed.nbytes() <= 3 * need * per
    assert slots[0] == 3 and slots[-1] < 3 and engine.totals["cache_shrinks"] >= 1
    assert engine.totals["cache_slot_caps"] >= 1 and engine.totals["evictions"] > 0
    # a session's longest prompt is what one slot of the budget holds
    assert engine.max_slot_positions() == min(engine.max_cache_len, 3 * need)


def test_a_call_that_cannot_fit_one_slot_is_refused_before_it_runs(gqa_model, rounds):
    keys, prompts, reference = rounds[0]
    tight = dataclasses.replace(KEEPING, max_cache_bytes=_position_bytes(gqa_model) * 8)  # 8 positions
    engine = Engine(gqa_model, STOPS, config=tight)
    with pytest.raises(ValueError, match="max_cache_bytes"):
        engine.generate_ids(prompts, MAX_NEW, keys=keys)
    with pytest.raises(ValueError, match="max_cache_bytes"):
        engine.generate_ids(prompts, MAX_NEW)
    assert engine._keyed is None  # nothing was allocated
    # unkeyed, a budget of one slot: the prompts one after another, the same tokens
    one = max(map(len, prompts)) + MAX_NEW
    single = Engine(
        gqa_model, STOPS, config=EngineConfig(slots=3, max_cache_bytes=one * _position_bytes(gqa_model))
    )
    assert single.generate_ids(prompts, MAX_NEW) == reference and single.stats["slots"] == 1


def test_the_cache_budget_on_cuda_is_a_share_of_the_memory_the_cache_could_have(gqa_model, monkeypatch):
    """No explicit budget on CUDA: 0.9 x (free + the allocator's unused reserve + the cache's own)."""
    import evaluation.generation.engine as engine_module

    engine = Engine(gqa_model, STOPS, config=KEEPING)
    assert engine._cache_budget(None) is None  # the CPU: unbounded
    engine.device = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 300)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 100)
    assert engine._cache_budget(None) == int((1000 + 200) * engine_module.CACHE_MEMORY_FRACTION)
    held = SimpleNamespace(nbytes=lambda: 500)
    assert engine._cache_budget(held) == int((1000 + 200 + 500) * engine_module.CACHE_MEMORY_FRACTION)
    explicit = Engine(gqa_model, STOPS, config=dataclasses.replace(KEEPING, max_cache_bytes=77))
    explicit.device = torch.device("cuda")
    assert explicit._cache_budget(None) == 77


def test_a_keyed_round_compares_each_continuing_prompt_with_its_slot_once(gqa_model, rounds, monkeypatch):
    """The engine orders a call's prompts by what their slots hold, then plans, hashes and stores them:
    one token comparison per prompt with its own slot for all of that (the table's memo), plus one
    per prompt whose plan copies from another slot. Same tokens as without counting."""
    import evaluation.generation.prefix_cache as pc

    engine = Engine(gqa_model, STOPS, config=KEEPING)
    for keys0, prompts0, ref0 in rounds[:2]:
        assert engine.generate_ids(prompts0, MAX_NEW, keys=keys0) == ref0
    keys1, prompts1, ref1 = rounds[2]  # key 1's earlier reply rendered otherwise, key 9 new
    compared = []  # token comparisons (not those of chain-hash lists, whose entries are huge)

    def counting(a, b, step=64):
        if not a or abs(a[0]) < 10**7:
            compared.append(id(b))
        return common_prefix(a, b, step)

    monkeypatch.setattr(pc, "common_prefix", counting)
    assert engine.generate_ids(prompts1, MAX_NEW, keys=keys1) == ref1
    new = [k for k in keys1 if k not in keys0]
    assert new and len(new) < len(keys1)
    # each prompt compared once with its own slot (the new key: with the slot it takes), plus the new key's
    # prompt with the slot holding its system prompt (the copy source); continuing prompts with no other
    per_prompt = Counter(compared)
    assert sum(per_prompt.values()) <= len(keys1) + len(new), per_prompt
    assert max(per_prompt.values()) <= 2


@pytest.mark.parametrize(
    "config",
    [
        KEEPING,
        EVICTING,
        dataclasses.replace(EVICTING, decode_attention="varlen"),  # per-slot decode lengths
        dataclasses.replace(
            KEEPING, prefill_attention="varlen"
        ),  # prefill attention reads each slot in place
        dataclasses.replace(EVICTING, decode_attention="varlen", prefill_attention="varlen"),
        dataclasses.replace(KEEPING, prefill_attention="packed"),  # new tokens packed, no padding
        dataclasses.replace(EVICTING, prefill_attention="packed", prefill_tokens=40),  # small packed groups
        dataclasses.replace(
            KEEPING, prefill_attention="packed", prefill_ramp=8
        ),  # groups of 8, 16, 32.. tokens
        dataclasses.replace(KEEPING, decode_attention="cascade"),  # shared prefixes read once per group
        dataclasses.replace(EVICTING, decode_attention="cascade"),
        dataclasses.replace(KEEPING, decode_attention="flex"),  # a group's whole blocks from one member
        dataclasses.replace(EVICTING, decode_attention="flex", slots=4),
        dataclasses.replace(KEEPING, decode_attention="flex", flex_rows=3),  # slots side by side in a row
        dataclasses.replace(EVICTING, decode_attention="flex", slots=4, flex_rows=4),
        dataclasses.replace(KEEPING, decode_attention="flex", share_blocks=True),  # each shared block once
        dataclasses.replace(
            KEEPING, decode_attention="flex", flex_cascade=2
        ),  # shared blocks scored once a row
        dataclasses.replace(EVICTING, decode_attention="flex", slots=4, flex_cascade=1),
        dataclasses.replace(KEEPING, decode_attention="grouped"),  # every shared depth read once per tile
        dataclasses.replace(EVICTING, decode_attention="grouped", slots=4),
    ],
    ids=[
        "keeping",
        "evicting",
        "evicting-varlen-decode",
        "keeping-varlen-prefill",
        "evicting-varlen-both",
        "keeping-packed-prefill",
        "evicting-packed-prefill",
        "keeping-packed-prefill-ramp",
        "keeping-cascade",
        "evicting-cascade",
        "keeping-flex",
        "evicting-flex",
        "keeping-flex-packed-rows",
        "evicting-flex-packed-rows",
        "keeping-flex-share-blocks",
        "keeping-flex-cascade",
        "evicting-flex-cascade",
        "keeping-grouped",
        "evicting-grouped",
    ],
)
def test_keyed_rounds_equal_generate_exactly(gqa_model, rounds, config):
    engine = Engine(gqa_model, STOPS, config=config)
    for r, (keys, prompts, reference) in enumerate(rounds):
        assert engine.generate_ids(prompts, MAX_NEW, keys=keys) == reference, f"round {r}"
        stats = engine.stats
        assert stats["prefilled_tokens"] + stats["reused_tokens"] + stats["copied_tokens"] == sum(
            map(len, prompts)
        )
        if r == 0:
            assert stats["copied_tokens"] >= 45 + 60  # keys 2, 3, 4 share key 0's or key 1's system prompt
            assert stats["slots"] == min(config.slots, 5)  # as many slots as keys (grown for key 9 later)
        if r == 1 and config.slots == 8:  # round 2 of each conversation: only the reply and the new turn
            assert stats["prefilled_tokens"] < 0.15 * sum(map(len, prompts)) and stats["evictions"] == 0
        assert (
            Engine(gqa_model, STOPS, config=EngineConfig(slots=3)).generate_ids(prompts, MAX_NEW) == reference
        )
    assert engine.totals["evictions"] > 0 if config.slots < 5 else engine.totals["evictions"] == 0
    assert engine.totals["copied_tokens"] > 0 and engine.totals["reused_tokens"] > 0
    # cascade, flex, grouped: keys with the same system prompt read it once per group
    sharing = config.decode_attention in ("cascade", "flex", "grouped")
    assert (engine.totals["decode_shared_positions"] > 0) == sharing


@pytest.mark.parametrize(
    "config",
    [
        KEEPING,
        EVICTING,
        dataclasses.replace(KEEPING, feed_chunk=2),
        dataclasses.replace(KEEPING, feed_overlap=True),  # feed in a thread, the other slots decoding
        dataclasses.replace(KEEPING, decode_attention="flex", prefill_attention="packed"),  # groups regrouped
        dataclasses.replace(KEEPING, decode_attention="flex", prefill_attention="packed", flex_rows=4),
        dataclasses.replace(KEEPING, decode_attention="flex", prefill_attention="packed", flex_cascade=2),
        dataclasses.replace(KEEPING, decode_attention="grouped", prefill_attention="packed"),
    ],
    ids=[
        "keeping",
        "evicting",
        "keeping-fed-in-pairs",
        "keeping-fed-overlapped",
        "keeping-flex-packed",
        "keeping-flex-packed-rows",
        "keeping-flex-packed-cascade",
        "keeping-grouped-packed",
    ],
)
def test_fed_rounds_in_one_call_equal_generate_exactly(gqa_model, rounds, config):
    """The same rounds in one call: each key's next prompt is fed as soon as its reply is out (a new key
    at the first feed, a dropped key never again); every reply is model.generate's, the cache grows."""
    prompt_of, expected = {}, {}
    for r, (keys, prompts, reference) in enumerate(rounds):
        for key, prompt, ids in zip(keys, prompts, reference, strict=True):
            prompt_of[key, r], expected[key, r] = prompt, ids
    at = dict.fromkeys(rounds[0][0], 0)
    fresh = {k: r for (k, r) in sorted(prompt_of, reverse=True) if k not in at}  # key -> its first round
    got, calls = {}, []

    def feed(done):
        calls.append(len(done))
        if config.feed_overlap:
            assert threading.current_thread() is not threading.main_thread()
        out = []
        for key, ids in done:
            assert (key, at[key]) not in got
            got[key, at[key]] = ids
            at[key] += 1
            if (key, at[key]) in prompt_of:
                out.append((key, prompt_of[key, at[key]]))
        for key, r in fresh.items():
            at[key] = r
            out.append((key, prompt_of[key, r]))
        fresh.clear()
        return out

    engine = Engine(gqa_model, STOPS, config=config)
    keys, prompts, reference = rounds[0]
    assert engine.generate_ids(prompts, MAX_NEW, keys=keys, feed=feed) == reference
    assert got == expected and len(calls) >= 2
    # in turn: a chunk at a time; overlapped: whatever finished while the last call ran, all at once
    assert max(calls) <= config.feed_chunk or config.feed_overlap
    # flex: the groups are recomputed as fed prompts come in, and a shared system prompt is read once
    assert (engine.totals["decode_shared_positions"] > 0) == (config.decode_attention in ("flex", "grouped"))
    assert (
        engine.stats["reused_tokens"] > 0 and engine._keyed.max_len >= max(map(len, rounds[-1][1])) + MAX_NEW
    )
    with pytest.raises(ValueError, match="already queued"):
        engine.generate_ids([[5] * 9, [6] * 9], 4, keys=["x", "y"], feed=lambda done: [("y", [7] * 9)] * 2)
    with pytest.raises(ValueError, match="keyed"):
        engine.generate_ids([[5] * 9], 4, feed=feed)


@pytest.mark.parametrize("overlap", [False, True])
def test_a_fed_call_has_all_the_slots_for_the_keys_its_feed_brings(gqa_model, overlap):
    """A fed call that starts with fewer prompts than slots gets every slot: the keys its feed brings
    (here the overlapped top-up's, asked while the first decodes) take free slots, evicting none, and
    each key's next round reuses its own cache."""
    config = dataclasses.replace(KEEPING, feed_overlap=overlap)
    engine = Engine(gqa_model, STOPS, config=config)
    rng = random.Random(3)
    first = {k: [rng.randrange(3, 300) for _ in range(20 + 5 * n)] for n, k in enumerate("abcdef")}
    rounds, joined = dict.fromkeys(first, 0), {"a"}

    def feed(done):
        out = []
        for k, ids in done:
            rounds[k] += 1
            if rounds[k] == 1:  # a second round, continuing the first
                out.append((k, first[k] + ids + [7]))
        new = [k for k in first if k not in joined]  # the top-up, or (in turn) the first feed
        joined.update(new)
        return out + [(k, first[k]) for k in new]

    engine.generate_ids([first["a"]], MAX_NEW, keys=["a"], feed=feed)
    assert engine._keyed.slots == config.slots and engine.totals["evictions"] == 0
    assert all(n == 2 for n in rounds.values()) and engine.totals["reused_tokens"] > 0


def test_an_overlapped_feed_that_fails_ends_the_call_with_its_error(gqa_model):
    """feed_overlap: an error in the feed's thread is raised by generate_ids; the engine's table starts
    over, the interpreter's switch interval is restored, and the engine serves the next call."""
    switch = sys.getswitchinterval()
    engine = Engine(gqa_model, STOPS, config=dataclasses.replace(KEEPING, feed_overlap=True))

    def feed(done):
        if done:
            raise RuntimeError("environment died")
        return [("b", [7] * 9)]  # the top-up: a second key while the first decodes

    with pytest.raises(RuntimeError, match="environment died"):
        engine.generate_ids([[5] * 9], 4, keys=["a"], feed=feed)
    assert sys.getswitchinterval() == switch and engine.table is None  # reset
    assert engine.generate_ids([[5] * 9], 4, keys=["a"]) == hf_generate_ids(
        gqa_model, [[5] * 9], STOPS, 0, 4, 1
    )


def test_prefill_keys_bounds_only_the_gathering_prefill(gqa_model, rounds, monkeypatch):
    """prefill_keys bounds the K/V an sdpa prefill gathers; the varlen prefill reads the cache in place,
    so its groups are bounded by new tokens only: fewer, larger prefill calls, the same replies. Packed,
    the group's tokens are its real ones (no padding): no more calls than varlen."""
    packed_tokens = []
    original = Engine._prefill_packed

    def spy(self, state, prompts, starts, slots, news):
        packed_tokens.append(sum(map(len, news)))
        return original(self, state, prompts, starts, slots, news)

    monkeypatch.setattr(Engine, "_prefill_packed", spy)
    config = dataclasses.replace(KEEPING, prefill_keys=200, prefill_tokens=120)
    calls = {}
    for kernel in ("sdpa", "varlen", "packed"):
        engine = Engine(gqa_model, STOPS, config=dataclasses.replace(config, prefill_attention=kernel))
        for keys, prompts, reference in rounds:
            assert engine.generate_ids(prompts, MAX_NEW, keys=keys) == reference
        calls[kernel] = engine.totals["prefill_calls"]
    assert calls["packed"] <= calls["varlen"] < calls["sdpa"], calls
    assert len(packed_tokens) == calls["packed"] and sum(packed_tokens) == engine.totals["prefilled_tokens"]


def test_divergent_prompt_reuses_up_to_the_first_different_token(gqa_model, rounds):
    engine = Engine(gqa_model, STOPS, config=EngineConfig(slots=2))
    keys, prompts, reference = rounds[0]
    [got] = engine.generate_ids(prompts[:1], MAX_NEW, keys=["k"])
    assert got == reference[0]
    cached = prompts[0] + got[:-1]
    changed = cached[:30] + [3 + (cached[30] + 1) % 297] + cached[31:] + [7, 8]
    [again] = engine.generate_ids([changed], MAX_NEW, keys=["k"])
    assert engine.stats["reused_tokens"] == 30 and engine.stats["prefilled_tokens"] == len(changed) - 30
    assert again == _reference(gqa_model, [changed])[0]


def test_keyed_prompt_that_does_not_fit_is_refused(gqa_model):
    engine = Engine(gqa_model, STOPS, config=EngineConfig(slots=2, max_len=64))
    assert engine.max_cache_len == 64
    with pytest.raises(ValueError, match="refused, not truncated"):
        engine.generate_ids([[5] * 10, [6] * 60], 8, keys=[0, 1])
    with pytest.raises(ValueError, match="distinct"):
        engine.generate_ids([[5] * 10, [6] * 10], 8, keys=[0, 0])
    assert engine.generate_ids([[5] * 56], 8, keys=[0]) == Engine(gqa_model, STOPS).generate_ids(
        [[5] * 56], 8
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("slots, slot_range", [(2, None), (16, range(8, 16))])
def test_keyed_rounds_on_cuda_graphs_equal_generate_fp32(gqa_model, rounds, slots, slot_range):
    """Keyed rounds under CUDA graphs; with ``slot_range`` the decode step runs on views of the upper
    half of the cache's slots (captured and replayed like a whole one)."""
    model = gqa_model.to("cuda")
    try:
        engine = Engine(model, STOPS, config=EngineConfig(slots=slots, sync_every=4, share_min_tokens=16))
        for keys, prompts, _ in rounds:
            got = engine.generate_ids(prompts, MAX_NEW, keys=keys, slot_range=slot_range)
            assert got == _reference(model, prompts)
        assert engine.stats["graphs"] >= 1 and "graph_error" not in engine.stats
        assert engine.totals["copied_tokens"] > 0 and (engine.totals["evictions"] > 0) == (slots == 2)
    finally:
        gqa_model.to("cpu")


def test_compiled_layers_decode_keyed_rounds_like_generate(gqa_model, rounds, monkeypatch):
    """``compile_layers``: the decode step runs each decoder layer compiled, broken only at the
    engine's attention (two regions a layer); the tokens are ``generate``'s, and outside the step the
    model is its own again (prefill, ``generate``). ``aot_eager`` stands in for inductor on the CPU
    (the same graphs; inductor's kernels are the GPU test's)."""
    from torch._dynamo.utils import counters

    from evaluation.generation import kernels

    monkeypatch.setattr(kernels, "LAYER_BACKEND", "aot_eager")
    torch._dynamo.reset()
    counters.clear()
    engine = Engine(
        gqa_model, STOPS, config=dataclasses.replace(KEEPING, decode_attention="flex", compile_layers=True)
    )
    shapes = set()  # decode batches (the cache's slots; it grows): each compiles its own graphs
    for r, (keys, prompts, reference) in enumerate(rounds):
        assert engine.generate_ids(prompts, MAX_NEW, keys=keys) == reference, f"round {r}"
        shapes.add(engine.stats["slots"])
    layers = kernels.decoder_layers(gqa_model)
    assert counters["stats"]["unique_graphs"] == 2 * len(layers) * len(shapes), shapes
    assert counters["graph_break"] and all("_compiled_attention" in b for b in counters["graph_break"])
    assert all("forward" not in vars(layer) for layer in layers)
    assert gqa_model.config._attn_implementation != kernels.COMPILED_ATTENTION_NAME
    torch._dynamo.reset()


def test_compiled_layers_with_inductor_yield_eagers_tokens_in_bf16():
    """Inductor's fused layers round where eager rounds (``kernels.layer_options``), so a bf16 model's
    greedy tokens are the eager step's (without it the first sequence parts at its 22nd token)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval().to(torch.bfloat16)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 512, (n,), generator=gen).tolist() for n in (17, 40, 33, 9, 60, 25, 12, 48)]
    eager = EngineConfig(slots=8, decode_attention="sdpa")
    reference = Engine(model, STOPS, config=eager).generate_ids(prompts, 40)
    torch._dynamo.reset()
    compiled = Engine(model, STOPS, config=dataclasses.replace(eager, compile_layers=True))
    assert compiled.generate_ids(prompts, 40) == reference
    torch._dynamo.reset()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_layers_on_cuda_graphs_with_inductor(gqa_model, rounds):
    """Inductor's fused layers inside the captured decode step: fp32 tokens equal ``generate``'s."""
    model = gqa_model.to("cuda")
    try:
        config = EngineConfig(slots=4, sync_every=4, share_min_tokens=16, compile_layers=True)
        engine = Engine(model, STOPS, config=config)
        for keys, prompts, _ in rounds:
            assert engine.generate_ids(prompts, MAX_NEW, keys=keys) == _reference(model, prompts)
        assert engine.stats["graphs"] >= 1 and "graph_error" not in engine.stats
    finally:
        gqa_model.to("cpu")


@pytest.mark.parametrize("kernel", ["auto", "grouped"])
def test_slot_ranges_keep_lanes_apart(gqa_model, rounds, kernel):
    """Two lanes on disjoint slot ranges (separate calls): each call seats and decodes its own range,
    no key evicts the other lane's, and the tokens are generate's; a shared prefix is still copied
    across lanes."""
    shared = [5 + i % 200 for i in range(80)]
    first, second = shared + [9, 9, 9], shared + [8, 8, 8]
    for lanes in ((None, None), (range(0, 1), range(1, 2))):
        engine = Engine(
            gqa_model, STOPS, config=EngineConfig(slots=2, share_min_tokens=16, decode_attention=kernel)
        )
        [reply] = engine.generate_ids([first], MAX_NEW, keys=["a"], slot_range=lanes[0])
        [other] = engine.generate_ids([second], MAX_NEW, keys=["b"], slot_range=lanes[1])
        assert other == _reference(gqa_model, [second])[0]
        follow = first + reply[:-1] + [7]
        assert engine.generate_ids([follow], MAX_NEW, keys=["a"], slot_range=lanes[0]) == _reference(
            gqa_model, [follow]
        )
        assert (engine.totals["evictions"] > 0) == (
            lanes[0] is None
        )  # one slot range: b and a evict each other
        if lanes[0] is not None:
            assert engine.table.slot_of == {"a": 0, "b": 1} and engine.totals["copied_tokens"] >= 64
            assert engine.stats["reused_tokens"] == len(first) + len(reply) - 1  # its own cache, whole
    with pytest.raises(ValueError, match="slot_range"):
        engine.generate_ids([first], MAX_NEW, keys=["c"], slot_range=range(1, 3))
    with pytest.raises(ValueError, match="outside slot_range"):  # a key keeps to its range
        engine.generate_ids([first], MAX_NEW, keys=["a"], slot_range=range(1, 2))


def test_on_decode_runs_once_when_the_first_decode_steps_are_queued(gqa_model, rounds, monkeypatch):
    """``generate_ids(on_decode=)``: called once per call, after every prompt that fits is admitted and
    the first decode steps are launched (never before an admission), with the same tokens as without."""
    engine = Engine(gqa_model, STOPS, config=EVICTING)  # two slots: admissions go on after the first decode
    events: list[str] = []
    admit, step = Engine._admit_keyed, Engine._step

    def admitting(self, *args, **kwargs):
        events.append("admit")
        return admit(self, *args, **kwargs)

    def stepping(self, *args, **kwargs):
        events.append("step")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "_admit_keyed", admitting)
    monkeypatch.setattr(Engine, "_step", stepping)
    for keys, prompts, ref in rounds:
        events.clear()
        assert engine.generate_ids(prompts, MAX_NEW, keys=keys, on_decode=lambda: events.append("on")) == ref
        assert events.count("on") == 1
        first = events.index("on")
        assert events[first - 1] == "step" and events.index("admit") < events.index("step") < first


def test_a_prefill_ramp_starts_with_a_small_group_and_doubles(gqa_model, rounds, monkeypatch):
    """``prefill_ramp``: an admission's first group takes at most that many new tokens, the next ones
    twice as many each, up to ``prefill_tokens``; without it one group takes everything that fits."""
    sizes: list[list[int]] = []
    extend = Engine._prefill_extend

    def recording(self, state, prompts, starts, slots):
        sizes[-1].append((sum(len(p) - s for p, s in zip(prompts, starts, strict=True)), len(prompts)))
        return extend(self, state, prompts, starts, slots)

    monkeypatch.setattr(Engine, "_prefill_extend", recording)
    keys, prompts, reference = rounds[0]
    for ramp in (0, 16):
        sizes.append([])
        config = dataclasses.replace(KEEPING, prefill_attention="packed", prefill_ramp=ramp)
        assert Engine(gqa_model, STOPS, config=config).generate_ids(prompts, MAX_NEW, keys=keys) == reference
    whole, ramped = sizes
    assert sum(n for n, _ in whole) == sum(n for n, _ in ramped) and len(ramped) > len(whole)
    limits = [16 * 2**k for k in range(len(ramped))]
    # a group past its limit only when it is one prompt (a prompt is never split)
    assert all(n <= limit or rows == 1 for (n, rows), limit in zip(ramped, limits, strict=True))
    assert whole[0][0] > limits[0] and whole[0][1] > 1
