"""``grouped`` decode attention: the LCP tree, its segments, and the kernels' partials and merge."""

from __future__ import annotations

import os
import random
from importlib.util import find_spec

import pytest
import torch

from evaluation.generation import grouped
from evaluation.generation.grouped import Node, SegmentTables, grouped_plan, lcp_tree, segments


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_lcp_tree_nests_the_runs_that_share_each_depth():
    # sorted sequences 0..4: 0-3 share 10 tokens, 0-1 share 30, 2-3 share 20; 4 shares nothing
    tree = lcp_tree([30, 10, 20, 0])
    assert tree == [Node(10, 0, 3, (Node(30, 0, 1), Node(20, 2, 3)))]
    assert lcp_tree([5, 5, 5]) == [Node(5, 0, 3)]  # one run
    assert lcp_tree([]) == [] and lcp_tree([0, 0]) == []


def _held(seed: int, slots: int) -> list[list[int]]:
    """Token ids per slot: a few tool sets (long shared prefixes), first turns shared by pairs."""
    rng = random.Random(seed)
    tools = [[rng.randrange(1000) for _ in range(rng.randrange(150, 400))] for _ in range(3)]
    held = []
    for s in range(slots):
        turn = [rng.randrange(1000) for _ in range(rng.randrange(70, 130))]
        if s % 2 and held:
            turn = held[-1][len(tools[(s - 1) % 3]) :][: len(turn)]  # the pair's first turn
        held.append(tools[s % 3] + turn + [rng.randrange(1000) for _ in range(rng.randrange(1, 40))])
    return held


def _layout(held: list[list[int]], live: int, **kw):
    order = sorted(range(live), key=lambda s: held[s]) + list(range(live, len(held)))
    return segments(order, _order_lcp(held, order, live), live, **kw)


@pytest.mark.parametrize("min_shared", [1, 64, 1000])
def test_segments_cover_each_live_slot_once_from_slots_holding_the_same_tokens(min_shared):
    held = _held(0, 12)
    live = 10
    layout = _layout(held, live, chunk=64, min_shared=min_shared)
    for s in range(len(held)):
        ranges = [
            (b, e, layout.order[m], p)
            for b, e, m, c, p in zip(layout.begin, layout.end, layout.mstart, layout.mcount, layout.pbase, strict=True)
            if s in layout.order[m : m + c]
        ]  # fmt: skip
        if s >= live:
            assert not ranges and layout.own_begin[s] == -1
            continue
        ranges.sort()
        covered, partials = 0, 0
        for begin, end, src, base in ranges:
            assert begin == covered and end > begin  # contiguous from 0, each position once
            assert held[src][:end] == held[s][:end]  # the source holds the same tokens
            assert base == partials  # partials numbered along the path
            covered, partials = end, partials + -(-(end - begin) // 64)
        assert layout.own_begin[s] == covered and layout.own_pbase[s] == partials
    if min_shared == 1000:
        assert not layout.begin  # nothing shares that much more than its ancestor
    else:
        assert layout.shared_positions > 0
        assert max(layout.mcount) > 2  # a tool set's segment holds more than a pair


def _caches(held: list[list[int]], heads: int, kv_heads: int, dim: int, length: int, dtype, device):
    """K/V that depend on the token and its position only (same tokens, same K/V in every slot)."""
    gen = torch.Generator().manual_seed(1)
    table_k = torch.randn(1000, kv_heads, dim, generator=gen)
    table_v = torch.randn(1000, kv_heads, dim, generator=gen)
    k = torch.zeros(len(held), kv_heads, length, dim)
    v = torch.zeros_like(k)
    for s, ids in enumerate(held):
        idx = torch.tensor(ids)
        phase = torch.arange(len(ids))[:, None, None] * 0.01
        k[s, :, : len(ids)] = (table_k[idx] + phase).transpose(0, 1)
        v[s, :, : len(ids)] = (table_v[idx] - phase).transpose(0, 1)
    query = torch.randn(len(held), heads, dim, generator=gen)
    return (t.to(device=device, dtype=dtype) for t in (query, k, v))


def _dense(query, k, v, pos):
    fold = query.shape[1] // k.shape[1]
    out = []
    for s in range(query.shape[0]):
        n = int(pos[s]) + 1
        keys = k[s, :, :n].float().repeat_interleave(fold, 0)
        values = v[s, :, :n].float().repeat_interleave(fold, 0)
        scores = torch.einsum("hd,hnd->hn", query[s].float(), keys) * query.shape[-1] ** -0.5
        out.append(torch.einsum("hn,hnd->hd", scores.softmax(-1), values))
    return torch.stack(out)


def _case(device="cpu", dtype=torch.float32, slots=12, live=10, chunk=96, heads=8):
    held = _held(0, slots)
    query, k, v = _caches(held, heads, 2, 16, 640, dtype, device)
    pos = torch.tensor([len(ids) - 1 for ids in held], device=device)
    tables = SegmentTables(slots, 2, heads // 2, torch.device(device), chunk=chunk)
    layout = _layout(held, live)
    tables.fill(layout.order, _order_lcp(held, layout.order, live), live)
    return held, query, k, v, pos, tables


def _order_lcp(held, order, live):
    lcp = [_lcp(held[a], held[b]) for a, b in zip(order[:live], order[1:live], strict=False)]
    return lcp + [0] * (len(held) - 1 - len(lcp))


def test_reference_equals_attention_and_reads_shared_prefixes_from_one_slot():
    held, query, k, v, pos, tables = _case()
    plan = grouped_plan(pos, tables, 2, 8, 16, 640)
    out = grouped.decode_grouped(query, k, v, pos, plan, None)
    live = 10
    assert torch.allclose(out[:live], _dense(query, k, v, pos)[:live], atol=1e-5)
    # no tables: every slot alone, idle ones too
    alone = grouped.decode_grouped(query, k, v, pos, grouped_plan(pos, None, 2, 8, 16, 640, chunk=80), None)
    assert torch.allclose(alone, _dense(query, k, v, pos), atol=1e-5)
    # a member's own copy of a shared prefix is never read; the source's is
    layout = tables.layout
    g = max(range(len(layout.begin)), key=lambda i: layout.mcount[i])
    src, other = layout.order[layout.mstart[g]], layout.order[layout.mstart[g] + 1]
    spoiled = k.clone()
    spoiled[other, :, layout.begin[g]] += 5.0
    assert torch.allclose(grouped.decode_grouped(query, spoiled, v, pos, plan, None), out, atol=1e-6)
    spoiled = k.clone()
    spoiled[src, :, layout.begin[g]] += 5.0
    changed = grouped.decode_grouped(query, spoiled, v, pos, plan, None)
    assert not torch.allclose(changed[other], out[other], atol=1e-3)


def _triton_here(device: str) -> bool:
    if find_spec("triton") is None:
        return False
    return torch.cuda.is_available() if device == "cuda" else os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("heads_per_item, heads", [(1, 8), (2, 8), (1, 6)])  # 6: 3 query heads a K/V head
def test_triton_kernels_equal_the_reference(device, dtype, heads_per_item, heads, monkeypatch):
    """On the CPU only under Triton's interpreter (``TRITON_INTERPRET=1``, Triton installed)."""
    if not _triton_here(device):
        pytest.skip("Triton (or its interpreter) not available here")
    if device == "cpu" and dtype == torch.bfloat16:
        pytest.skip(
            "Triton 3.9's interpreter multiplies bf16 dot operands as raw bits (fp16 checks 16-bit inputs)"
        )
    monkeypatch.setattr(grouped, "HEADS_PER_ITEM", heads_per_item)
    held, query, k, v, pos, tables = _case(device, dtype, heads=heads)
    plan = grouped_plan(pos, tables, 2, heads, 16, 640)
    want = grouped.decode_grouped(query, k, v, pos, plan, None, use_triton=False)
    got = grouped.decode_grouped(query, k, v, pos, plan, None, use_triton=True)
    tol = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 4e-2}[dtype]  # ~1 ulp of outputs ~4
    assert (got.float() - want.float()).abs().max().item() < tol
    plan = grouped_plan(pos, None, 2, heads, 16, 640, chunk=80)
    want = grouped.decode_grouped(query, k, v, pos, plan, None, use_triton=False)
    got = grouped.decode_grouped(query, k, v, pos, plan, None, use_triton=True)
    assert (got.float() - want.float()).abs().max().item() < tol


@pytest.mark.gpu
def test_two_streams_equal_one_and_replay_in_a_cuda_graph(monkeypatch):
    """STREAMS = 2: the node launch on a side stream beside the own launch, joined before the merge;
    the same output as one stream, eagerly and replayed from a captured graph."""
    if not _triton_here("cuda"):
        pytest.skip("CUDA with Triton not available here")
    held, query, k, v, pos, tables = _case("cuda", torch.bfloat16)
    plan = grouped_plan(pos, tables, 2, 8, 16, 640)
    monkeypatch.setattr(grouped, "STREAMS", 1)
    want = grouped.decode_grouped(query, k, v, pos, plan, None)
    monkeypatch.setattr(grouped, "STREAMS", 2)
    assert torch.equal(grouped.decode_grouped(query, k, v, pos, plan, None), want)
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # capture off the default stream, as the engine does
        grouped.decode_grouped(query, k, v, pos, plan, None)
        with torch.cuda.graph(graph):
            out = grouped.decode_grouped(query, k, v, pos, plan, None)
    torch.cuda.current_stream().wait_stream(side)
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, want)


def test_item_maps_name_each_work_items_segment():
    held, query, k, v, pos, tables = _case()
    plan = grouped_plan(pos, tables, 2, 8, 16, 640)
    for cum, item_map in ((plan.own_cum, plan.own_map), (tables.cum, plan.node_map)):
        cum, item_map = cum.tolist(), item_map.tolist()
        assert cum[-1] > 0 and len(item_map) >= cum[-1]
        for w in range(cum[-1]):
            seg = item_map[w]
            assert cum[seg] <= w < cum[seg + 1]


def test_settings_round_trip_and_bad_ones_are_refused(monkeypatch):
    for name in (
        "CHUNK",
        "NODE_ROWS",
        "PROGRAMS_PER_SM",
        "BLOCK_N",
        "NUM_WARPS",
        "NUM_STAGES",
        "HEADS_PER_ITEM",
        "STREAMS",
    ):
        monkeypatch.setattr(grouped, name, getattr(grouped, name))  # restored after the test
    grouped.configure("256:32:8:128:4:2:2")
    assert grouped.settings() == "256:32:8:128:4:2:2:1" and grouped.node_members(3) == 10
    grouped.configure("256:32:8:128:4:2:2:2")
    assert grouped.settings() == "256:32:8:128:4:2:2:2"
    for bad in (
        "256:32:8:128:4:2", "256:24:8:128:4:2:2", "256:32:8:100:4:2:2", "0:32:8:128:4:2:2", "256:32:8:128:4:2:2:3",
    ):  # fmt: skip
        with pytest.raises(ValueError):
            grouped.configure(bad)
