"""Triton kernels of :mod:`evaluation.generation.grouped` (imported only where Triton is: CUDA, or its
interpreter with ``TRITON_INTERPRET=1``).

``partials``: persistent programs walk a list of work items -- (segment, chunk of its positions, ``HPI``
K/V heads, tile of its members) -- numbered by the prefix sums ``CUM`` over the segments (``MAP``: each
item's segment); per K/V head an item scores its members' query rows (``FOLD`` query heads per K/V head,
one row each) against one chunk of one source slot's cache, with an online softmax, and writes the
chunk's normalised output and log2-sum-exp per row to the member's partial ``pbase + chunk``. ``merge``: a slot's partials combined by their
log-sum-exps. Shapes: ``S`` slots, ``Hq`` query heads, ``Hkv`` K/V heads, ``L`` positions, ``D`` dim.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def partials(
    Q, K, V, PO, PL,
    CUM, MAP, SRC, BEGIN, END, MSTART, MCOUNT, PBASE, MEMBERS, POS,
    n_seg, scale,
    s_qs, s_qh, s_ks, s_kh, s_kl, s_os, s_op, s_oh, s_ls, s_lp,
    KVH: tl.constexpr, FOLD: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CH: tl.constexpr, OWN: tl.constexpr, HPI: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    """One launch over every work item of its segments. ``OWN``: segment ``s`` is slot ``s`` reading its
    own cache from ``BEGIN[s]`` (< 0: its current position only) through ``POS[s]``; else segment ``g``
    is members ``MEMBERS[MSTART[g] : MSTART[g] + MCOUNT[g]]`` reading positions ``BEGIN[g]..END[g]-1``
    of slot ``SRC[g]``. ``MAP[w]``: the segment of item ``w``. ``scale`` is the softmax scale times
    log2(e)."""
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    total = tl.load(CUM + n_seg)
    rows = tl.arange(0, BLOCK_M)
    per_tile: tl.constexpr = BLOCK_M // FOLD
    head_groups: tl.constexpr = KVH // HPI
    for w in range(pid, total, nprog):
        seg = tl.load(MAP + w)
        local = w - tl.load(CUM + seg)
        if OWN:
            here = tl.load(POS + seg).to(tl.int32)
            lo0 = tl.load(BEGIN + seg)
            lo0 = tl.where(lo0 < 0, here, lo0)
            end = here + 1
            count = 1
            src = seg
            tiles = 1
        else:
            lo0 = tl.load(BEGIN + seg)
            end = tl.load(END + seg)
            count = tl.load(MCOUNT + seg)
            src = tl.load(SRC + seg)
            tiles = (count + per_tile - 1) // per_tile
        tile = local % tiles
        rest = local // tiles
        head_group = rest % head_groups
        chunk = rest // head_groups
        lo = lo0 + chunk * CH
        hi = tl.minimum(lo + CH, end)
        member = tile * per_tile + rows // FOLD
        valid = (member < count) & (rows < per_tile * FOLD)  # a tile's rows past its members' heads: none
        if OWN:
            slot = member * 0 + seg
        else:
            slot = tl.load(MEMBERS + tl.load(MSTART + seg) + member, mask=valid, other=0)
        part = tl.load(PBASE + seg) + chunk
        for hh in tl.static_range(HPI):
            _head(
                Q, K, V, PO, PL, slot.to(tl.int64), head_group * HPI + hh, src, lo, hi, part, valid, scale,
                s_qs, s_qh, s_ks, s_kh, s_kl, s_os, s_op, s_oh, s_ls, s_lp, FOLD, D, BLOCK_M, BLOCK_N, IEEE,
            )  # fmt: skip


@triton.jit
def _head(
    Q, K, V, PO, PL, slot, head_kv, src, lo, hi, part, valid, scale,
    s_qs, s_qh, s_ks, s_kh, s_kl, s_os, s_op, s_oh, s_ls, s_lp,
    FOLD: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    """One K/V head of a work item: its rows (slots ``slot``, query heads of ``head_kv``) against positions
    ``lo..hi-1`` of slot ``src``; the output and log2-sum-exp to partial ``part``."""
    rows = tl.arange(0, BLOCK_M)
    dims = tl.arange(0, D)
    cols = tl.arange(0, BLOCK_N)
    head = head_kv * FOLD + rows % FOLD
    q = tl.load(
        Q + slot[:, None] * s_qs + head[:, None] * s_qh + dims[None, :], mask=valid[:, None], other=0.0
    )
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    base = src.to(tl.int64) * s_ks + head_kv * s_kh
    for n in range(lo, hi, BLOCK_N):
        offs = n + cols
        inside = offs < hi
        where = base + offs[:, None].to(tl.int64) * s_kl + dims[None, :]
        k = tl.load(K + where, mask=inside[:, None], other=0.0)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(inside[None, :], s * scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(V + where, mask=inside[:, None], other=0.0)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = PO + slot[:, None] * s_os + part * s_op + head[:, None] * s_oh + dims[None, :]
    tl.store(out, acc / l_i[:, None], mask=valid[:, None])
    tl.store(PL + slot * s_ls + part * s_lp + head, m_i + tl.log2(l_i), mask=valid)


@triton.jit
def merge(
    PO, PL, COUNTS, OUT, s_os, s_op, s_oh, s_ls, s_lp, s_xs, s_xh,
    HQ: tl.constexpr, HQ_P2: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Slot ``program_id``'s output: its first ``COUNTS[s]`` partials merged by their log2-sum-exps."""
    s = tl.program_id(0).to(tl.int64)
    heads = tl.arange(0, HQ_P2)
    dims = tl.arange(0, D)
    real = heads < HQ
    n = tl.load(COUNTS + s)
    m = tl.full([HQ_P2], float("-inf"), tl.float32)
    l_sum = tl.zeros([HQ_P2], tl.float32)
    acc = tl.zeros([HQ_P2, D], tl.float32)
    for p in range(0, n):
        lse = tl.load(PL + s * s_ls + p * s_lp + heads, mask=real, other=0.0)
        o = tl.load(
            PO + s * s_os + p * s_op + heads[:, None] * s_oh + dims[None, :], mask=real[:, None], other=0.0
        )
        m_new = tl.maximum(m, lse)
        a = tl.exp2(m - m_new)
        b = tl.exp2(lse - m_new)
        acc = acc * a[:, None] + o * b[:, None]
        l_sum = l_sum * a + b
        m = m_new
    out = OUT + s * s_xs + heads[:, None] * s_xh + dims[None, :]
    tl.store(out, (acc / l_sum[:, None]).to(OUT.dtype.element_ty), mask=real[:, None])
