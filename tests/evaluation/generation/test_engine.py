"""The engine must give exactly ``model.generate``'s greedy tokens (fp32, CPU) under any schedule."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from evaluation.generation.engine import Engine, EngineConfig, EngineUnsupported
from evaluation.generation.generate import generate, hf_generate_ids


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(3, 300) for _ in range(rng.randint(1, 40))] for _ in range(11)]


@pytest.fixture(scope="module")
def reference(gqa_model, prompts):
    # One prompt at a time: no padding at all in the reference.
    return [hf_generate_ids(gqa_model, [p], [1, 2], 0, 16, 1)[0] for p in prompts]


@pytest.mark.parametrize(
    "config",
    [
        EngineConfig(slots=11, sync_every=1),  # all at once
        EngineConfig(slots=3, sync_every=4, prefill_tokens=40),  # refills, small prefill groups
        EngineConfig(slots=1, sync_every=16, attend_bucket=8),  # one slot, many attention buckets
        EngineConfig(slots=4, sync_every=3, attend_bucket=8, decode_attention="matmul"),  # GEMM decode kernel
        EngineConfig(slots=4, sync_every=3, attend_bucket=8, decode_attention="varlen"),  # per-slot lengths
        EngineConfig(slots=4, sync_every=3, decode_attention="flex"),  # FlexAttention, per-slot block mask
        EngineConfig(slots=5, sync_every=3, decode_attention="flex", flex_rows=2),  # 2 slots a kernel row
    ],
)
def test_engine_equals_generate_exactly(gqa_model, prompts, reference, config):
    engine = Engine(gqa_model, [1, 2], config=config)
    assert engine.generate_ids(prompts, 16) == reference
    assert engine.stats["prefilled"] == len(prompts) and engine.stats["graphs"] == 0  # no graphs on CPU
    assert 0 < engine.stats["decode_live_positions"] < engine.stats["decode_kv_positions"]
    batched = hf_generate_ids(gqa_model, prompts, [1, 2], 0, 16, 4)  # left-padded generate agrees too
    assert batched == reference


def test_stop_token_and_stop_sequence_end_a_slot(gqa_model, prompts, reference):
    full = Engine(gqa_model, []).generate_ids(prompts, 16)  # no stops: always 16 tokens
    assert (
        all(len(f) == 16 for f in full)
        and [f[: len(r)] for f, r in zip(full, reference, strict=True)] == reference
    )
    common = max(range(300), key=lambda t: sum(r.count(t) for r in full))
    got = Engine(gqa_model, [common], config=EngineConfig(slots=4, sync_every=5)).generate_ids(prompts, 16)
    expected = [r[: r.index(common) + 1] if common in r else r for r in full]
    assert got == expected and any(len(g) < 16 for g in got)
    sequence = full[0][2:4]
    got = Engine(gqa_model, [], [sequence], EngineConfig(slots=4)).generate_ids(prompts[:1], 16)
    assert got == [full[0][:4]]


def test_decode_kernels_agree_on_a_masked_cache(gqa_model):
    """The two decode kernels compute the same attention over a cache whose slots hold different lengths."""
    from evaluation.generation import kernels

    torch.manual_seed(0)
    slots, heads, groups, length, dim = 5, 2, 3, 37, 8
    query = torch.randn(slots, heads, groups, dim)
    keys, values = torch.randn(slots, heads, length, dim), torch.randn(slots, heads, length, dim)
    pos = torch.tensor([0, 3, 17, 36, 20])
    mask = kernels.decode_mask(pos, length, torch.float32)
    sdpa = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask)
    ours = kernels.decode_matmul(query, keys, values, mask, None)
    assert torch.allclose(ours, sdpa, atol=1e-5)
    assert torch.allclose(ours[0], values[0, :, :1].expand(heads, groups, dim))  # slot 0 sees position 0 only
    garbage = keys.clone()
    garbage[1, :, 4:] = 1e4  # beyond slot 1's position: must not matter
    assert torch.allclose(kernels.decode_matmul(query, garbage, values, mask, None)[1], ours[1], atol=1e-5)
    # The variable-length form reads the cache through a strided view and per-slot offsets: the same
    # attention, and nothing past a slot's position (garbage there, in slot 1, changes nothing).
    flat = query.reshape(slots, heads * groups, dim)
    varlen = kernels.decode_varlen(flat, keys, values, pos, length, None)
    assert torch.allclose(varlen, sdpa.reshape(slots, heads * groups, dim), atol=1e-5)
    assert torch.allclose(kernels.decode_varlen(flat, garbage, values, pos, length, None), varlen, atol=1e-5)
    wide = torch.randn(slots, heads, length + 9, dim)  # a cache longer than what is attended
    wide[:, :, :length] = keys
    assert torch.allclose(
        kernels.decode_varlen(flat, wide, torch.cat([values, wide[:, :, length:]], 2), pos, length, None),
        varlen,
        atol=1e-5,
    )
    # FlexAttention's block mask over a cache of whole blocks reads the same
    whole = lambda t: torch.cat([t, torch.randn(slots, heads, 128 - length, dim)], 2)  # noqa: E731
    flex = kernels.decode_flex(flat, whole(keys), whole(values), pos, None)
    assert torch.allclose(flex, varlen, atol=1e-5)
    assert torch.allclose(
        kernels.decode_flex(flat, whole(garbage), whole(values), pos, None), varlen, atol=1e-5
    )
    with pytest.raises(ValueError, match="multiple of 128"):
        kernels.decode_flex(flat, keys, values, pos, None)  # 37 positions: a partial block
    with pytest.raises(ValueError, match="decode_attention"):
        Engine(gqa_model, [1], config=EngineConfig(decode_attention="flash"))
    auto = Engine(gqa_model, [1])  # auto: flex or varlen only for bf16/fp16 on CUDA
    assert (auto.decode_attention, auto.prefill_attention) == ("sdpa", "sdpa")
    assert Engine(gqa_model, [1], config=EngineConfig(decode_attention="varlen")).decode_attention == "varlen"


def test_budget_of_one_token_and_bad_input(gqa_model, prompts, reference):
    assert Engine(gqa_model, []).generate_ids(prompts[:3], 1) == [r[:1] for r in reference[:3]]
    assert Engine(gqa_model, []).generate_ids([], 4) == []
    with pytest.raises(ValueError, match="empty prompt"):
        Engine(gqa_model, []).generate_ids([[5], []], 4)
    with pytest.raises(ValueError):
        Engine(gqa_model, []).generate_ids(prompts, 0)
    assert gqa_model.config._attn_implementation != "forge_engine"  # attention routing restored


def test_unsupported_model_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(EngineUnsupported):
        Engine(model, [0])


def test_generate_uses_engine_and_matches_hf_path(tokenizer, tiny_model):
    texts = ["short", "a somewhat longer prompt with more tokens in it", "mid length prompt", "x"]
    fast = generate(tiny_model, tokenizer, texts, max_new_tokens=12, batch_size=2)
    slow = generate(tiny_model, tokenizer, texts, max_new_tokens=12, batch_size=2, use_engine=False)
    assert fast == slow and any(fast)
    cut = fast[1][3:6]
    stopped = generate(tiny_model, tokenizer, texts[1:2], max_new_tokens=12, stop_strings=[cut])
    assert stopped == [fast[1][: fast[1].find(cut)]]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_engine_matches_generate_fp32(gqa_model, prompts, reference):
    model = gqa_model.to("cuda")
    try:
        engine = Engine(model, [1, 2], config=EngineConfig(slots=4, sync_every=4))
        got = engine.generate_ids(prompts, 16)
        assert engine.stats["graphs"] >= 1 and "graph_error" not in engine.stats
        assert got == hf_generate_ids(model, prompts, [1, 2], 0, 16, 1)
    finally:
        gqa_model.to("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_varlen_decode_on_cuda_graphs_in_bf16(gqa_model, prompts):
    """The flash variable-length kernel (auto's choice in bf16 on CUDA) agrees with sdpa and is captured."""
    from evaluation.generation import kernels

    gen = torch.Generator(device="cpu").manual_seed(0)
    k, v = (torch.randn(6, 2, 96, 64, generator=gen).cuda().bfloat16() for _ in range(2))
    q = torch.randn(6, 2, 3, 64, generator=gen).cuda().bfloat16()
    pos = torch.tensor([0, 5, 40, 95, 63, 17], device="cuda")
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=kernels.decode_mask(pos, 96, q.dtype)
    )
    varlen = kernels.decode_varlen(q.flatten(1, 2), k, v, pos, 96, None).view_as(q)
    assert (varlen.float() - sdpa.float()).abs().max() < 2e-2
    model = copy.deepcopy(gqa_model).to("cuda", torch.bfloat16)  # the shared fixture stays fp32
    engine = Engine(model, [1, 2], config=EngineConfig(slots=4, sync_every=4, decode_attention="varlen"))
    assert engine.decode_attention == "varlen" and engine.prefill_attention == "packed"  # auto: bf16 on CUDA
    assert len(engine.generate_ids(prompts, 16)) == len(prompts)
    assert engine.stats["graphs"] >= 1 and "graph_error" not in engine.stats


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_decode_compiled_on_cuda_graphs_in_bf16(gqa_model, prompts):
    """FlexAttention's compiled decoding kernel, over a cache longer than any slot, agrees with the flash
    varlen kernel, and the engine captures its step in a CUDA graph."""
    from evaluation.generation import kernels

    gen = torch.Generator(device="cpu").manual_seed(0)
    k, v = (torch.randn(6, 2, 1024, 64, generator=gen).cuda().bfloat16() for _ in range(2))
    q = torch.randn(6, 6, 64, generator=gen).cuda().bfloat16()
    pos = torch.tensor([0, 5, 127, 128, 640, 1023], device="cuda")
    varlen = kernels.decode_varlen(q, k, v, pos, 1024, None)
    flex = kernels.decode_flex(q, k, v, pos, None)
    assert (flex.float() - varlen.float()).abs().max() < 2e-2
    for options in (kernels.FLEX_DECODE_OPTIONS, (("BLOCK_N", 128), ("num_stages", 2), ("num_warps", 4))):
        plan = kernels.flex_plan(pos, 2, 1024, options=options)  # the kernel's Triton options: same result
        assert plan.options == options
        tuned = kernels.decode_flex(q, k, v, pos, None, plan=plan)
        assert (tuned.float() - varlen.float()).abs().max() < 2e-2
    k[1, :, 6:] = 1e4  # past slot 1's position: never read
    assert (kernels.decode_flex(q, k, v, pos, None)[1].float() - varlen[1].float()).abs().max() < 2e-2
    model = copy.deepcopy(gqa_model).to("cuda", torch.bfloat16)
    engine = Engine(model, [1, 2], config=EngineConfig(slots=4, sync_every=4))
    hopper = torch.cuda.get_device_capability() == (9, 0)  # the tuned options where they were measured
    assert engine.flex_options == (kernels.FLEX_DECODE_OPTIONS if hopper else ())
    # auto: bf16 on CUDA, Triton installed with torch: grouped on sm_90 (where it was measured), else flex
    assert engine.decode_attention == ("grouped" if hopper else "flex")
    assert len(engine.generate_ids(prompts, 16)) == len(prompts)
    assert engine.stats["graphs"] >= 1 and "graph_error" not in engine.stats


def _extend_case(device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A cache of 5 slots whose rows (slots 1, 2, 4) each add new tokens after what they hold, left-padded to
    one width; returns (query [n, Hq, width, D], k cache, v cache, slots, starts, news, width)."""
    gen = torch.Generator().manual_seed(0)
    slots_n, kv_heads, groups, length, dim = 5, 2, 3, 40, 8
    k, v = (torch.randn(slots_n, kv_heads, length, dim, generator=gen).to(device, dtype) for _ in range(2))
    slots, starts, news = [1, 2, 4], [0, 9, 30], [4, 7, 2]
    width = max(news)
    query = torch.randn(len(slots), kv_heads * groups, width, dim, generator=gen).to(device, dtype)
    return query, k, v, slots, starts, news, width


def _extend_expected(query, k, v, slots, starts, news, width):
    """Each row's real queries (its last news[r] columns) attending its slot's positions causally, by sdpa."""
    groups = query.shape[1] // k.shape[1]
    out = []
    for r, (slot, start, new) in enumerate(zip(slots, starts, news, strict=True)):
        keys = k[slot, :, : start + new].repeat_interleave(groups, 0)
        values = v[slot, :, : start + new].repeat_interleave(groups, 0)
        q = query[r, :, width - new :]
        steps = torch.arange(start + new, device=q.device)
        visible = steps[None, :] <= torch.arange(new, device=q.device)[:, None] + start
        out.append(torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=visible))
    return out  # per row [Hq, new, D]


def test_extend_varlen_reads_each_rows_slot_in_place(gqa_model):
    """The keyed prefill's varlen attention: each real token sees its slot's cached positions and the new
    tokens before it (bottom-right causal), nothing past them; padding columns see nothing or less."""
    from evaluation.generation import kernels

    query, k, v, slots, starts, news, width = _extend_case()
    used = torch.tensor([s + n for s, n in zip(starts, news, strict=True)])
    out = kernels.extend_varlen(query, k, v, torch.tensor(slots), used, 40, None)  # [n, width, Hq, D]
    expected = _extend_expected(query, k, v, slots, starts, news, width)
    for r, new in enumerate(news):
        assert torch.allclose(out[r, width - new :].transpose(0, 1), expected[r], atol=1e-5), r
    assert torch.equal(out[0, : width - news[0]], torch.zeros_like(out[0, : width - news[0]]))  # sees nothing
    garbage_k, garbage_v = k.clone(), v.clone()
    for slot, u in zip(slots, used.tolist(), strict=True):
        garbage_k[slot, :, u:], garbage_v[slot, :, u:] = 1e4, -1e4
    garbage_k[[0, 3]] = 1e4  # slots no row reads
    again = kernels.extend_varlen(query, garbage_k, garbage_v, torch.tensor(slots), used, 40, None)
    for r, new in enumerate(news):
        assert torch.allclose(again[r, width - new :], out[r, width - new :], atol=1e-5)
    with pytest.raises(ValueError, match="prefill_attention"):
        Engine(gqa_model, [1], config=EngineConfig(prefill_attention="flash"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_extend_varlen_flash_kernel_matches_its_reference_in_bf16():
    """On CUDA the flash kernel (bottom-right causal, seqused_k) computes what the CPU reference does."""
    from evaluation.generation import kernels

    query, k, v, slots, starts, news, width = _extend_case("cuda", torch.bfloat16)
    used = torch.tensor([s + n for s, n in zip(starts, news, strict=True)], device="cuda")
    out = kernels.extend_varlen(query, k, v, torch.tensor(slots, device="cuda"), used, 64, None)
    expected = _extend_expected(query.float(), k.float(), v.float(), slots, starts, news, width)
    for r, new in enumerate(news):
        assert (out[r, width - new :].transpose(0, 1).float() - expected[r]).abs().max() < 2e-2, r


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_packed_rows_flash_kernel_matches_its_reference_in_bf16():
    """The packed prefill's attention (rows of different lengths back to back, no padding) on the flash
    kernel computes what the CPU reference does."""
    from evaluation.generation import kernels

    query, k, v, slots, starts, news, width = _extend_case("cuda", torch.bfloat16)
    packed = torch.cat([query[r, :, width - n :].transpose(0, 1) for r, n in enumerate(news)])  # [T, Hq, D]
    cu_q = torch.tensor([0, *torch.tensor(news).cumsum(0).tolist()], device="cuda")
    used = torch.tensor([s + n for s, n in zip(starts, news, strict=True)], device="cuda")
    out = kernels.varlen_rows(
        packed, k, v, torch.tensor(slots, device="cuda"), cu_q, max(news), used, 64, None
    )
    expected = _extend_expected(query.float(), k.float(), v.float(), slots, starts, news, width)
    for r in range(len(news)):
        got = out[cu_q[r] : cu_q[r + 1]].transpose(0, 1).float()
        assert (got - expected[r]).abs().max() < 2e-2, r
    cpu = kernels.varlen_rows(
        packed.float().cpu(), k.float().cpu(), v.float().cpu(), torch.tensor(slots), cu_q.cpu(), max(news),
        used.cpu(), 64, None,
    )  # fmt: skip
    assert (cpu - out.float().cpu()).abs().max() < 2e-2


def _shared_case(shape: tuple, members: list[int], prefix: int, pos: list[int], seed: int):
    """Random query and cache of ``shape`` (slots, K/V heads, query heads per K/V head, positions, head
    dim) where ``members`` hold the first member's first ``prefix`` positions; positions ``pos``."""
    gen = torch.Generator().manual_seed(seed)
    slots, kv_heads, fold, length, dim = shape
    k, v = (torch.randn(slots, kv_heads, length, dim, generator=gen) for _ in range(2))
    for s in members[1:]:
        k[s, :, :prefix], v[s, :, :prefix] = k[members[0], :, :prefix], v[members[0], :, :prefix]
    query = torch.randn(slots, kv_heads * fold, dim, generator=gen)
    return (query, k, v), torch.tensor(pos), kv_heads * length


def _cascade_case(device: str = "cpu", dtype: torch.dtype = torch.float32):
    """5 slots; slots 0, 2 and 3 hold the same first 20 positions (a shared prefix), 1 and 4 their own."""
    (query, k, v), pos, rows = _shared_case((5, 2, 3, 40, 8), [0, 2, 3], 20, [25, 10, 30, 22, 39], 0)
    return (t.to(device, dtype) for t in (query, k, v)), pos.to(device), rows


def test_cascade_decode_reads_a_shared_prefix_once_and_equals_varlen():
    from evaluation.generation import kernels

    (query, k, v), pos, rows = _cascade_case()
    groups = kernels.CascadeGroups.allocate(5, torch.device("cpu"))
    varlen = kernels.decode_varlen(query, k, v, pos, 40, None)
    assert torch.allclose(
        kernels.decode_cascade(query, k, v, pos, groups, 40, None), varlen, atol=1e-6
    )  # none
    groups.fill([([0, 2, 3], 16)], 5, rows)
    assert groups.prefix.tolist() == [16, 0, 16, 16, 0] and groups.perm.tolist()[:3] == [0, 2, 3]
    assert torch.allclose(kernels.decode_cascade(query, k, v, pos, groups, 40, None), varlen, atol=1e-5)
    # the members read slot 0's copy of the prefix: what slots 2 and 3 hold there no longer matters
    k2 = k.clone()
    k2[2:4, :, :16] = 1e4
    assert torch.allclose(kernels.decode_cascade(query, k2, v, pos, groups, 40, None), varlen, atol=1e-5)
    groups.fill([([1, 4], 8)], 5, rows)  # slots that do not share a prefix: a wrong grouping shows
    assert not torch.allclose(kernels.decode_cascade(query, k, v, pos, groups, 40, None), varlen, atol=1e-3)


def _flex_sharing_case(device: str = "cpu", dtype: torch.dtype = torch.float32):
    """6 slots of 384 positions (3 FlexAttention blocks); slots 1, 3 and 4 hold the same first 300
    positions (two whole blocks and part of a third), the others their own."""
    (query, k, v), pos, _ = _shared_case((6, 2, 2, 384, 16), [1, 3, 4], 300, [5, 310, 383, 299, 340, 128], 1)
    return (t.to(device, dtype) for t in (query, k, v)), pos.to(device)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_flex_decode_reads_a_groups_shared_blocks_from_its_first_member(device):
    """With groups, a member's whole blocks of the shared prefix come from the group's first member's
    cache (rows ordered head by head, members side by side): the same attention as each slot reading
    its own; what the members hold there is never read; a wrong grouping shows. On CUDA: compiled."""
    from evaluation.generation import kernels

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dtype, tol = (torch.float32, 1e-5) if device == "cpu" else (torch.bfloat16, 2e-2)
    (query, k, v), pos = _flex_sharing_case(device, dtype)
    alone = kernels.decode_flex(query, k, v, pos, None)
    varlen = kernels.decode_varlen(query, k, v, pos, 384, None)
    assert (alone.float() - varlen.float()).abs().max() < tol
    groups = kernels.CascadeGroups.allocate(6, torch.device(device))
    assert (kernels.decode_flex(query, k, v, pos, None, groups).float() - varlen.float()).abs().max() < tol
    groups.fill([([4, 1, 3], 288)], 6, 2 * 384)  # slot 4 leads; 288 positions: 2 whole blocks shared
    assert groups.leader.tolist() == [0, 4, 2, 4, 4, 5] and groups.perm.tolist()[:3] == [4, 1, 3]
    shared = kernels.decode_flex(query, k, v, pos, None, groups)
    assert (shared.float() - varlen.float()).abs().max() < tol
    k2, v2 = k.clone(), v.clone()
    k2[[1, 3], :, :256], v2[[1, 3], :, :256] = 1e4, 1e4  # members' copies of the 2 shared blocks: unread
    assert (kernels.decode_flex(query, k2, v2, pos, None, groups).float() - varlen.float()).abs().max() < tol
    v2[[1, 3], :, 256:300] = 1e4  # the partial third block is each member's own
    assert (kernels.decode_flex(query, k2, v2, pos, None, groups).float() - varlen.float()).abs().max() > 1
    groups.fill([([0, 2], 256)], 6, 2 * 384)  # slots that share nothing: a wrong grouping shows
    assert (kernels.decode_flex(query, k, v, pos, None, groups).float() - varlen.float()).abs().max() > 1e-1


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("per_row", [1, 2, 4])
def test_flex_cascade_scores_a_groups_shared_blocks_once_per_row_and_equals_varlen(device, per_row):
    """Cascade layout: a group's whole shared blocks from its first member, up to ``per_row`` members'
    queries a kernel row (a group of 3 takes 3, 2 or 1 rows), then each slot's own blocks, merged by
    log-sum-exp: equal to varlen; the members' copies of the shared blocks are never read, the partial
    third block is each member's own; slots alone read level 2 only. On CUDA: compiled."""
    from evaluation.generation import kernels

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dtype, tol = (torch.float32, 1e-5) if device == "cpu" else (torch.bfloat16, 2e-2)
    (query, k, v), pos = _flex_sharing_case(device, dtype)
    varlen = kernels.decode_varlen(query, k, v, pos, 384, None)
    groups = kernels.CascadeGroups.allocate(6, torch.device(device))
    alone = kernels.cascade_flex_plan(pos, 2, 384, groups, per_row)
    assert alone.row.tolist() == [-1] * 6 and alone.count.sum() == 0  # nothing shared: no level-1 row reads
    assert (
        kernels.decode_flex(query, k, v, pos, None, plan=alone).float() - varlen.float()
    ).abs().max() < tol
    groups.fill([([4, 1, 3], 288)], 6, 2 * 384)  # 288 positions: 2 whole blocks shared, then 32 own
    plan = kernels.cascade_flex_plan(pos, 2, 384, groups, per_row)
    rows = -(-3 // per_row)
    assert sorted(plan.row[[4, 1, 3]].tolist()) == sorted(
        r for r in range(rows) for _ in range(min(per_row, 3 - r * per_row))
    )
    assert plan.count.view(2, -1)[:, :rows].eq(2).all() and plan.count.view(2, -1)[:, rows:].eq(0).all()
    assert (kernels.decode_flex(query, k, v, pos, None, plan=plan).float() - varlen.float()).abs().max() < tol
    k2, v2 = k.clone(), v.clone()
    k2[[1, 3], :, :256], v2[[1, 3], :, :256] = 1e4, 1e4  # members' copies of the 2 shared blocks: unread
    assert (
        kernels.decode_flex(query, k2, v2, pos, None, plan=plan).float() - varlen.float()
    ).abs().max() < tol
    v2[[1, 3], :, 256:300] = 1e4  # the partial third block is each member's own
    assert (kernels.decode_flex(query, k2, v2, pos, None, plan=plan).float() - varlen.float()).abs().max() > 1


def test_block_sources_read_each_shared_block_from_the_first_slot_holding_it():
    from evaluation.generation import kernels

    # sorted: 3, 0, 2, 1; 3 and 0 hold 3 blocks alike, 3, 0 and 2 two, 2 and 1 nothing
    assert kernels.block_sources([3, 0, 2, 1], [384, 256 + 100, 0], 4) == [
        [3, 3, 3, 0], [1, 1, 1, 1], [3, 3, 2, 2], [3, 3, 3, 3]
    ]  # fmt: skip
    assert kernels.block_sources([0, 1], [0], 2) == [[0, 0], [1, 1]]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_flex_decode_with_block_sharing_reads_each_depth_once(device):
    """Prefixes shared at two depths (slots 1, 3, 4 the first 256 positions -- two blocks --, 3 and 4 all
    384): each whole shared block comes from the first slot (in sorted order) holding it -- blocks 0-1
    from slot 1, block 2 of slot 4 from slot 3 --, the same attention as varlen, and the copies it does
    not read can hold anything."""
    from evaluation.generation import kernels

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dtype, tol = (torch.float32, 1e-5) if device == "cpu" else (torch.bfloat16, 2e-2)
    (query, k, v), pos, _ = _shared_case((6, 2, 2, 384, 16), [1, 3, 4], 256, [5, 310, 383, 299, 340, 128], 1)
    k[4], v[4] = k[3], v[3]
    query, k, v, pos = query.to(device, dtype), k.to(device, dtype), v.to(device, dtype), pos.to(device)
    varlen = kernels.decode_varlen(query, k, v, pos, 384, None).float()
    groups = kernels.CascadeGroups.allocate(6, torch.device(device))
    groups.fill_blocks([0, 1, 3, 4, 2, 5], [0, 256, 384, 0, 0], 3)  # sorted by held ids
    assert groups.sources[4].tolist() == [1, 1, 3] and groups.sources[3].tolist() == [1, 1, 3]
    plan = kernels.flex_plan(pos, 2, 384, groups)
    assert (kernels.decode_flex(query, k, v, pos, None, plan=plan).float() - varlen).abs().max() < tol
    k2, v2 = k.clone(), v.clone()
    k2[[3, 4], :, :256], v2[[3, 4], :, :256], v2[4, :, 256:] = 1e4, 1e4, 1e4  # copies read from elsewhere
    assert (kernels.decode_flex(query, k2, v2, pos, None, plan=plan).float() - varlen).abs().max() < tol
    v2[3, :, 256:] = 1e4  # slot 3's block 2, which slot 4 reads too
    out = kernels.decode_flex(query, k2, v2, pos, None, plan=plan).float()
    assert (out[[3, 4]] - varlen[[3, 4]]).abs().amin(dim=(1, 2)).min() > 1
    groups.fill([], 6, 2 * 384)  # back to groups: the table is dropped
    assert groups.sources is None


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("per_row", [1, 2, 4, 8])
def test_packed_flex_rows_read_each_listed_block_once_and_equal_varlen(device, per_row):
    """Several slots' queries in one kernel row (:func:`kernels.packed_flex_plan`): alone or grouped, the
    same attention as varlen; a group's prefix positions come from its first member only (the members'
    copies unread, partial block included), once per row; a wrong grouping shows. On CUDA: compiled."""
    from evaluation.generation import kernels

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dtype, tol = (torch.float32, 1e-5) if device == "cpu" else (torch.bfloat16, 2e-2)
    (query, k, v), pos = _flex_sharing_case(device, dtype)
    varlen = kernels.decode_varlen(query, k, v, pos, 384, None)

    def flex(plan, keys=k, values=v):
        return kernels.decode_flex(query, keys, values, pos, None, plan=plan).float()

    alone = kernels.packed_flex_plan(pos, 2, 384, None, per_row, 2)
    assert (flex(alone) - varlen.float()).abs().max() < tol
    rows = -(-6 // per_row)
    assert alone.members.shape == (rows, per_row) and alone.index.shape == (2 * rows, per_row * 4)
    # each slot's blocks up to its position's, once: ceil((pos + 1) / 128) per slot and head
    assert alone.count.sum().item() == 2 * sum((p + 128) // 128 for p in pos.tolist())
    groups = kernels.CascadeGroups.allocate(6, torch.device(device))
    groups.fill([([4, 1, 3], 288)], 6, 2 * 384)  # slot 4 leads; 288 positions shared (2.25 blocks)
    grouped = kernels.packed_flex_plan(pos, 2, 384, groups, per_row, 2)
    assert (flex(grouped) - varlen.float()).abs().max() < tol
    assert grouped.count.sum() < alone.count.sum() or per_row == 1
    k2, v2 = k.clone(), v.clone()
    k2[[1, 3], :, :288], v2[[1, 3], :, :288] = 1e4, 1e4  # the members' copies of the prefix: unread
    assert (flex(grouped, k2, v2) - varlen.float()).abs().max() < tol
    v2[[1, 3], :, 288:300] = 1e4  # past the prefix each member reads its own
    assert (flex(grouped, k2, v2) - varlen.float()).abs().max() > 1
    groups.fill([([0, 2], 256)], 6, 2 * 384)  # slots that share nothing: a wrong grouping shows
    assert (
        flex(kernels.packed_flex_plan(pos, 2, 384, groups, per_row, 2)) - varlen.float()
    ).abs().max() > 1e-1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cascade_decode_flash_kernels_match_varlen_in_bf16():
    """On CUDA the two flash calls (stacked group queries over the prefix, each slot over its rest) and
    their log-sum-exp merge compute what the varlen kernel does."""
    from evaluation.generation import kernels

    (query, k, v), pos, rows = _cascade_case("cuda", torch.bfloat16)
    groups = kernels.CascadeGroups.allocate(5, torch.device("cuda"))
    groups.fill([([0, 2, 3], 16)], 5, rows)
    varlen = kernels.decode_varlen(query, k, v, pos, 40, None)
    cascade = kernels.decode_cascade(query, k, v, pos, groups, 40, None)
    assert (cascade.float() - varlen.float()).abs().max() < 2e-2


def test_flex_kernel_options_are_the_tuned_ones_on_hopper_only(gqa_model):
    """``EngineConfig.flex_options=None``: the options measured on an H200 (sm_90) there, PyTorch's choice
    elsewhere (another GPU may not fit their pipeline stages in shared memory); a given set is kept."""
    assert Engine(gqa_model, [1, 2]).flex_options == ()  # the CPU
    chosen = (("BLOCK_N", 32), ("num_stages", 2), ("num_warps", 4))
    assert Engine(gqa_model, [1, 2], config=EngineConfig(flex_options=chosen)).flex_options == chosen
