"""bench/bfcl_multi_turn_throughput.py's shared-prefix estimate (what cascade decode attention would read)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench.bfcl_multi_turn_throughput import cascade_positions, shared_prefix_positions  # noqa: E402


def test_shared_prefix_is_read_once_per_group_of_a_round():
    system = list(range(100, 196))  # 96 tokens: 6 whole blocks
    a, b = system + [1, 2, 3], system + [4, 5]
    c = [7] * 50  # shares nothing
    own, shared = shared_prefix_positions([[a, b, c]], steps=2)
    tail = 3 * 2 * 1 // 2
    assert own == 2 * (len(a) + len(b) + len(c)) + tail
    assert shared == 2 * (96 + (len(a) - 96) + (len(b) - 96) + len(c)) + tail  # the 96 once, not twice
    # a prefix shorter than min_shared, or in another round, is not shared
    assert shared_prefix_positions([[a[:40] + [1], a[:40] + [2]]], 1) == (82, 82)
    assert shared_prefix_positions([[a], [b]], 2)[1] == shared_prefix_positions([[a], [b]], 2)[0]


def test_cascade_reads_whole_shared_blocks_once_per_row():
    system = list(range(1000, 1300))  # 300 shared tokens: 2 whole 128-blocks
    members = [system + [i, i + 1] for i in range(5)]  # a group of 5
    alone = [[7] * 50]
    held = sum(map(len, members + alone))
    # rows of 4: two rows read the 256 shared positions, each member reads its rest (44) itself
    assert cascade_positions([members + alone], 1, per_row=4) == held - 5 * 256 + 2 * 256
    assert cascade_positions([members + alone], 1, per_row=8) == held - 5 * 256 + 256
    assert cascade_positions([alone], 3) == 3 * 50 + 3  # nothing shared: each its own (+ the new tokens)


def test_round_groups_keep_one_depth_and_dumped_batches_replay_with_block_sharing(tmp_path):
    """Prompts sharing tools (256 tokens) among three, and a first turn among two of them: the groups keep
    one depth per prompt (the pair; the third prompt alone), the dumped batch keeps the sorted order and
    what neighbours share, and bench/flex_decode.py replays it: every variant, block sharing included,
    computes varlen's attention on K/V that agree wherever prompts hold the same tokens."""
    import argparse

    import torch

    from bench.bfcl_multi_turn_throughput import dump_batches, round_groups
    from bench.flex_decode import load_batches, measure

    tools = list(range(100, 356))
    a, b, c, d = tools + [1] * 130 + [2], tools + [1] * 130 + [3], tools + [5] * 10, [7] * 20
    assert round_groups([a, b, c, d]) == [([0, 1], 384)]  # c shares 256 tokens with both, left alone
    path = tmp_path / "rounds.jsonl"
    dump_batches([[a, b, c, d]], 4, path)
    args = argparse.Namespace(
        batches=path, slots=5, length=512, iters=1, packed=["2:1"], block_splits=[0], options=["64:3:2"],
        cascade=["2:1"], grouped=["128:16:4:64:4:2:2"],
    )  # fmt: skip
    [(pos, groups, (order, lcp))] = load_batches(args)
    assert pos == [len(a) + 2, len(b) + 2, len(c) + 2, len(d) + 2, 0] and groups == [([0, 1], 384)]
    assert order == [3, 0, 1, 2, 4] and lcp == [0, 386, 256, 0]  # sorted: d, a, b, c; the padding slot last
    k, v = (torch.randn(5, 2, 512, 8) for _ in range(2))
    rows, live, unique = measure(args, pos, groups, k, v, torch.randn(5, 4, 8), (order, lcp))
    assert {name for name, _, _ in rows} >= {
        "flex blocks shared, split 0",
        "flex packed, 2 slots a row, split 1",
        "flex shared, split 4, BLOCK_N 64, 3 stages, 2 warps",
        "flex cascade, 2 a row, split 1, tuned",
        "grouped, chunk 128, 16 rows, 4/SM, BLOCK_N 64, 4w 2s, 2 h",
    }
    assert all(diff < 1e-4 for _, _, diff in rows) and unique < live
    assert torch.equal(k[2, :, :256], k[0, :, :256]) and not torch.equal(k[2, :, 256:384], k[0, :, 256:384])


class _JsonTemplate:
    """A chat template as a function: the tools as JSON, then the messages."""

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=False):
        import json

        return f"<tools>{json.dumps(tools)}</tools>" + "".join(
            f"<{m['role']}>{m['content']}" for m in messages
        )


def test_whole_renders_bypass_the_tool_renderer_for_the_ab_run():
    from bench.bfcl_multi_turn_throughput import whole_renders
    from evaluation.generation.render import ToolRenderer, render_prompt

    tools = [{"name": "get_weather", "description": "Look up the weather. " * 5, "parameters": {}}]
    prompts = [{"messages": [{"role": "user", "content": "hi"}] * n, "tools": tools} for n in (1, 2, 3)]
    template, renderer = _JsonTemplate(), ToolRenderer(_JsonTemplate())
    with whole_renders(True):
        assert [renderer.render(p) for p in prompts] == [render_prompt(template, p) for p in prompts]
    assert not renderer.stats  # the renderer never ran
    with whole_renders(False):
        assert [renderer.render(p) for p in prompts] == [render_prompt(template, p) for p in prompts]
    assert renderer.stats["spliced"] == 2 and renderer.stats["learned"] == 1


def test_scripted_run_replies_with_the_ground_truth_and_executes_its_calls(bfcl_environments):
    """--host-only's ground-truth run: each turn's calls are one reply, executed in the environments,
    then a closing text; the conversations then score valid, and the line counts the worker's requests."""
    from types import SimpleNamespace

    from bench.bfcl_multi_turn_throughput import scripted_run
    from contracts.bfcl import MULTI_TURN_CATEGORIES, load_multi_turn_category
    from evaluation.bfcl.multi_turn import Limits, score_conversations
    from tests.evaluation.conftest import FIXTURES, build_model, build_tokenizer

    items = [i for name in MULTI_TURN_CATEGORIES for i in load_multi_turn_category(FIXTURES, name)]
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    args = SimpleNamespace(max_new_tokens=8, slots=4)
    line, rows = scripted_run(
        items, tokenizer, model, bfcl_environments, args, Limits(max_prompt_tokens=None)
    )
    # the tiny model's 8,192 positions end the fixtures' longer conversations at their first prompt
    assert {r["stopped"] for r in rows} == {None, "prompt_too_long"}
    done = [(i, r) for i, r in zip(items, rows, strict=True) if r["stopped"] is None]
    assert len(done) >= 4
    # per turn: the calls (by name), then the closing reply's empty step; a turn without calls: one empty step
    got = [[[[next(iter(c)) for c in step] for step in turn] for turn in r["decoded"]] for _, r in done]
    assert got == [
        [[[c.split("(")[0] for c in calls], []] if calls else [[]] for calls in i.ground_truth]
        for i, _ in done
    ]
    executed = sum(1 for i, _ in done for calls in i.ground_truth if calls)
    assert f"execute {executed} in" in line and f"{sum(r['n_calls'] for r in rows)} calls executed" in line
    scored = score_conversations([i for i, _ in done], [r for _, r in done], bfcl_environments)
    assert all(r["valid"] for r in scored)


def test_prefetch_run_times_rounds_without_and_with_prefetch(bfcl_environments):
    """--host-only's simulated-GPU line: rounds without and with prefetching first prompts, two passes
    each, their time and the host's (the run's minus the sleeps), over the same rounds."""
    import re
    from types import SimpleNamespace

    from bench.bfcl_multi_turn_throughput import prefetch_run
    from contracts.bfcl import MULTI_TURN_CATEGORIES, load_multi_turn_category
    from evaluation.bfcl.multi_turn import Limits
    from tests.evaluation.conftest import FIXTURES, build_model, build_tokenizer

    items = [i for name in MULTI_TURN_CATEGORIES for i in load_multi_turn_category(FIXTURES, name)]
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    args = SimpleNamespace(max_new_tokens=8, slots=4, simulate_round=0.01)
    line = prefetch_run(items, tokenizer, model, bfcl_environments, args, Limits(max_prompt_tokens=None))
    rounds = int(re.search(r"(\d+) rounds", line).group(1))
    assert rounds >= 2 and "prefetch 0: " in line and "prefetch 2: " in line
    for n in ("0", "2"):
        total, host = re.search(rf"prefetch {n}: ([\d.]+), [\d.]+ s, host ([\d.]+), [\d.]+ s", line).groups()
        assert 0 < float(host) <= float(total)


def test_run_names_set_the_engine_knobs_they_tune():
    """``..._ramp-N`` / ``..._sync-N`` set prefill_ramp / sync_every (a repeat's ``@K`` ignored);
    ``..._prefetch-N`` is run_conversations' prefetch; other names leave the defaults."""
    from bench.bfcl_multi_turn_throughput import prefetch_of, tuned_config
    from evaluation.generation.engine import EngineConfig

    base = EngineConfig(slots=4)
    assert tuned_config(base, "multi_turn_engine_reuse_ramp-2048@2").prefill_ramp == 2048
    synced = tuned_config(base, "multi_turn_engine_reuse_sync-16")
    assert synced.sync_every == 16 and synced.slots == 4 and synced.prefill_ramp == base.prefill_ramp
    assert tuned_config(base, "multi_turn_engine_reuse@3") == base
    assert prefetch_of("multi_turn_engine_reuse_prefetch-128@2") == 128
    assert prefetch_of("multi_turn_engine_reuse") == 0
