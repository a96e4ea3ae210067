"""``grouped`` decode attention: every cached prefix that several slots share is read once per step for
all of them, at every depth it is shared, split over the whole GPU.

Why: in BFCL's multi-turn rounds the slots' caches are mostly shared text -- a tool set's docs held by
many conversations, a first turn by pairs -- and the K/V positions the slots hold are 2.5x the distinct
ones. Per-slot kernels (``varlen``, ``flex``) read and score every slot's copy; ``cascade`` and flex's
cascade layout read one depth per group and were no faster (few long calls; flex's block masks).

How (:class:`SegmentTables`, filled when the decode batch changes): the slots, sorted by what they hold,
form a tree of their longest common prefixes (an LCP-interval tree: the slots under a node are a run of
the sorted order). A node whose depth adds at least ``MIN_SHARED`` tokens to its kept ancestor's is a
*segment*: its members read positions ``ancestor depth .. node depth - 1`` from one member's cache (the
first of the run). Below its deepest kept node each slot reads the rest of its cache alone (its *own*
segment, to its current position, moving every step). A segment is cut into chunks of :data:`CHUNK`
positions; one work item is a chunk, a K/V head and a tile of up to ``BLOCK_M / fold`` members (their
``fold`` query heads per K/V head are the tile's rows), so a chunk's K/V is loaded and scored once for
the tile. Each item writes, per member, the chunk's softmax output and log-sum-exp to the member's next
*partial*; a second kernel merges each slot's partials (:mod:`evaluation.generation.grouped_triton`).
A member's partials are numbered along its path in the tree (``pbase``: the chunks of its kept
ancestors), the same for every member of a node, so a node's items need no per-member bookkeeping.

Everything a step reads is device tensors of static shapes (one CUDA graph per cache size); the node
tables change only when the engine regroups, the own segments are derived from ``pos`` every step
(:func:`grouped_plan`). Off the GPU :func:`grouped_reference` computes the same partials and merge
with torch (CPU tests exercise the tables and the plan exactly, fp32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec

import torch

# The tunables' defaults are the best of a sweep on an H200 over BFCL's real decode batches
# (bench/flex_decode.py --grouped; bench/results/2026-12-03_grouped_decode_h200.txt).
#: positions per work item
CHUNK = 512
#: query rows of a node tile (members per tile: this over the query heads per K/V head)
NODE_ROWS = 64
#: query rows of an own tile (one slot's ``fold`` heads; 16 is the least a Triton dot takes)
OWN_ROWS = 16
#: K/V positions per inner block
BLOCK_N = 64
#: a tree node is a segment when it adds at least this many shared tokens to its kept ancestor
MIN_SHARED = 64
#: kept nodes on one slot's path at most (bounds the partials a slot writes)
MAX_LEVELS = 8
#: persistent programs per streaming multiprocessor
PROGRAMS_PER_SM = 4
#: K/V heads one work item walks in turn (one lookup of its segment for all of them)
HEADS_PER_ITEM = 4
#: the partial kernel's launch options
NUM_WARPS = 4
NUM_STAGES = 3
#: CUDA streams of a step's two partial launches: 1, one after the other; 2, the node launch on a side
#: stream beside the own launch, so each fills the SMs the other's last work items leave idle
STREAMS = 1


def configure(spec: str) -> None:
    """Set the tunables from ``CHUNK:NODE_ROWS:PROGRAMS_PER_SM:BLOCK_N:NUM_WARPS:NUM_STAGES:HEADS_PER_ITEM``
    and optionally ``:STREAMS`` (benchmarks' sweeps; tables made before keep their chunk)."""
    global CHUNK, NODE_ROWS, PROGRAMS_PER_SM, BLOCK_N, NUM_WARPS, NUM_STAGES, HEADS_PER_ITEM, STREAMS
    values = [int(x) for x in spec.split(":")]
    if len(values) not in (7, 8) or min(values) < 1:
        raise ValueError(f"grouped settings {spec!r}: want 7 or 8 positive integers joined by ':'")
    if any(n < 16 or n & (n - 1) for n in (values[1], values[3])):
        raise ValueError(f"grouped settings {spec!r}: NODE_ROWS and BLOCK_N must be powers of two >= 16")
    if len(values) == 8 and values[7] > 2:
        raise ValueError(f"grouped settings {spec!r}: STREAMS is 1 or 2")
    CHUNK, NODE_ROWS, PROGRAMS_PER_SM, BLOCK_N, NUM_WARPS, NUM_STAGES, HEADS_PER_ITEM = values[:7]
    STREAMS = values[7] if len(values) == 8 else STREAMS


def settings() -> str:
    """The tunables as :func:`configure` takes them."""
    return ":".join(
        map(str, (CHUNK, NODE_ROWS, PROGRAMS_PER_SM, BLOCK_N, NUM_WARPS, NUM_STAGES, HEADS_PER_ITEM, STREAMS))
    )


def available(device: torch.device, head_dim: int) -> bool:
    """Whether the Triton kernels run here (CUDA with Triton, a power-of-two head dim of 16..256)."""
    return (
        torch.device(device).type == "cuda"
        and find_spec("triton") is not None
        and 16 <= head_dim <= 256
        and head_dim & (head_dim - 1) == 0
    )


@dataclass(frozen=True)
class Node:
    """An LCP interval: sorted slots ``left..right`` (inclusive) share their first ``depth`` tokens;
    ``children``: the intervals directly under it."""

    depth: int
    left: int
    right: int
    children: tuple[Node, ...] = ()


def lcp_tree(lcp: Sequence[int]) -> list[Node]:
    """The top-level LCP intervals of ``len(lcp) + 1`` sorted sequences, ``lcp[i]`` being what sequences
    ``i`` and ``i + 1`` share (the classic stack algorithm; depth-0 sharing is the root, not returned)."""
    stack: list[tuple[int, int, list[Node]]] = [(0, 0, [])]
    for k, value in enumerate([*lcp, 0]):
        left, orphan = k, None
        while stack[-1][0] > value:
            depth, left, children = stack.pop()
            node = Node(depth, left, k, tuple(children))
            if stack[-1][0] >= value:
                stack[-1][2].append(node)
            else:  # the interval pushed next (depth ``value``) encloses it
                orphan = node
        if stack[-1][0] < value:
            stack.append((value, left, [orphan] if orphan is not None else []))
    return stack[0][2]


@dataclass(frozen=True)
class Segments:
    """The host-side layout of one batch (see the module docstring). Node segment ``g``: members
    ``order[mstart[g] : mstart[g] + mcount[g]]`` read positions ``begin[g]..end[g]-1`` of slot
    ``order[mstart[g]]``; slot ``s`` then reads from ``own_begin[s]`` (-1: its current position only)
    on its own, into partials from ``own_pbase[s]`` on."""

    order: list[int]
    begin: list[int]
    end: list[int]
    mstart: list[int]
    mcount: list[int]
    pbase: list[int]
    own_begin: list[int]
    own_pbase: list[int]

    @property
    def shared_positions(self) -> int:
        """K/V positions (per K/V head) a step does not read again: each segment's length for all but one member."""
        return sum((m - 1) * (e - b) for m, b, e in zip(self.mcount, self.begin, self.end, strict=True))


def segments(
    order: Sequence[int], lcp: Sequence[int], live: int, chunk: int = CHUNK, min_shared: int = MIN_SHARED,
    max_levels: int = MAX_LEVELS,
) -> Segments:  # fmt: skip
    """:class:`Segments` of ``order`` (every slot, sorted by what it holds, the ``live`` decoding ones
    first) and ``lcp`` (tokens neighbours hold alike; 0 past the live ones). A slot not decoding reads
    its current position only (its output is never used)."""
    slots = len(order)
    if len(lcp) != max(slots - 1, 0):
        raise ValueError(f"{slots} slots need {slots - 1} lcp values, got {len(lcp)}")
    begin: list[int] = []
    end: list[int] = []
    mstart: list[int] = []
    mcount: list[int] = []
    pbase: list[int] = []
    own_begin = [-1] * slots
    own_pbase = [0] * slots
    for i in range(min(live, slots)):
        own_begin[order[i]] = 0
    # (node, depth of the kept ancestor, partials before it, kept levels above)
    todo = [(node, 0, 0, 0) for node in reversed(lcp_tree(list(lcp[: max(live - 1, 0)])))]
    while todo:
        node, above, base, levels = todo.pop()
        if node.depth - above >= min_shared and levels < max_levels:
            begin.append(above)
            end.append(node.depth)
            mstart.append(node.left)
            mcount.append(node.right - node.left + 1)
            pbase.append(base)
            base += -(-(node.depth - above) // chunk)
            above, levels = node.depth, levels + 1
            for i in range(node.left, node.right + 1):  # deeper nodes overwrite (visited after)
                own_begin[order[i]], own_pbase[order[i]] = above, base
        todo += [(child, above, base, levels) for child in reversed(node.children)]
    return Segments(list(order), begin, end, mstart, mcount, pbase, own_begin, own_pbase)


class SegmentTables:
    """:class:`Segments` as device tensors of static shapes (``S`` node entries, unused ones with no
    work), rewritten in place by :meth:`fill` between steps; what a captured decode step reads."""

    def __init__(
        self, slots: int, kv_heads: int, fold: int, device: torch.device, chunk: int | None = None
    ) -> None:
        self.slots, self.kv_heads, self.fold, self.chunk = slots, kv_heads, fold, chunk or CHUNK
        i32 = lambda n: torch.zeros(n, dtype=torch.int32, device=device)  # noqa: E731
        self.order, self.src, self.begin, self.end = i32(slots), i32(slots), i32(slots), i32(slots)
        self.mstart, self.mcount, self.pbase, self.cum = i32(slots), i32(slots), i32(slots), i32(slots + 1)
        self.own_begin, self.own_pbase = i32(slots), i32(slots)
        self.layout = self.fill(list(range(slots)), [0] * (slots - 1), slots)

    def fill(
        self, order: Sequence[int], lcp: Sequence[int], live: int, min_shared: int = MIN_SHARED
    ) -> Segments:
        """Lay out the batch (:func:`segments`, with this table's chunk) and write it to the device."""
        from evaluation.generation.kernels import h2d

        layout = segments(order, lcp, live, self.chunk, max(1, min_shared))
        pad = self.slots - len(layout.begin)
        tiles = [-(-m // node_members(self.fold)) for m in layout.mcount]
        work = [
            -(-(e - b) // self.chunk) * t * head_groups(self.kv_heads)
            for b, e, t in zip(layout.begin, layout.end, tiles, strict=True)
        ]
        cum = [0]
        for w in work:
            cum.append(cum[-1] + w)
        src = [layout.order[m] for m in layout.mstart]
        values = [
            layout.order, src + [0] * pad, layout.begin + [0] * pad, layout.end + [0] * pad,
            layout.mstart + [0] * pad, layout.mcount + [0] * pad, layout.pbase + [0] * pad,
            cum + [cum[-1]] * pad, layout.own_begin, layout.own_pbase,
        ]  # fmt: skip
        tensors = [
            self.order, self.src, self.begin, self.end, self.mstart, self.mcount, self.pbase, self.cum,
            self.own_begin, self.own_pbase,
        ]  # fmt: skip
        packed = h2d(torch.tensor([v for row in values for v in row], dtype=torch.int32), self.cum.device)
        offset = 0
        for tensor in tensors:
            tensor.copy_(packed[offset : offset + tensor.numel()])
            offset += tensor.numel()
        self.layout = layout
        return layout


def head_groups(kv_heads: int) -> int:
    """Work items per (segment chunk, tile): the K/V heads in groups of :func:`heads_per_item`."""
    return kv_heads // heads_per_item(kv_heads)


def heads_per_item(kv_heads: int) -> int:
    return HEADS_PER_ITEM if kv_heads % HEADS_PER_ITEM == 0 else 1


def node_rows(fold: int) -> int:
    """Query rows of a node tile: :data:`NODE_ROWS`, a power of two holding at least one member's heads."""
    return max(_pow2(NODE_ROWS), _pow2(fold))


def node_members(fold: int) -> int:
    """Members per node tile (its rows past the last whole member's heads stay empty)."""
    return node_rows(fold) // fold


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass
class GroupedPlan:
    """One decode step's own segments and partial buffers, the same for every layer (built by the first)."""

    tables: SegmentTables | None
    chunk: int
    own_begin: torch.Tensor  # [S] int32
    own_pbase: torch.Tensor  # [S] int32
    own_cum: torch.Tensor  # [S + 1] int32: own work items' prefix sums
    own_map: torch.Tensor  # [own items at most] int32: each own item's slot
    node_map: torch.Tensor | None  # [node items at most] int32: each node item's segment
    counts: torch.Tensor  # [S] int32: partials per slot
    partial_out: torch.Tensor  # [S, P, Hq, D] fp32
    partial_lse: torch.Tensor  # [S, P, Hq] fp32 (log2 units)


def grouped_plan(
    pos: torch.Tensor, tables: SegmentTables | None, kv_heads: int, heads: int, head_dim: int, max_len: int,
    chunk: int | None = None,
) -> GroupedPlan:  # fmt: skip
    """The step's plan from the slots' positions (device ops only: capturable). Without ``tables``
    every slot reads its whole cache alone, in chunks of ``chunk`` (with tables: theirs)."""
    slots = pos.shape[0]
    chunk = tables.chunk if tables is not None else chunk or CHUNK
    if tables is not None:
        own_begin, own_pbase = tables.own_begin, tables.own_pbase
    else:
        own_begin = torch.zeros(slots, dtype=torch.int32, device=pos.device)
        own_pbase = own_begin
    here = pos.to(torch.int32)
    start = torch.where(own_begin < 0, here, own_begin)
    chunks = torch.div(here + 1 - start + chunk - 1, chunk, rounding_mode="floor")
    own_cum = torch.zeros(slots + 1, dtype=torch.int32, device=pos.device)
    own_cum[1:] = torch.cumsum(chunks * head_groups(kv_heads), 0)
    # a slot's partials: its kept ancestors' chunks (< MAX_LEVELS + max_len / CHUNK), then its own
    width = -(-max_len // chunk) + MAX_LEVELS + 1
    # each item's segment, looked up once by the kernel (the last segment whose first item is <= it),
    # over as many items as there can be: own ones per slot up to its whole cache, node ones as many
    # as every slot's kept ancestors' chunks (a tile is charged to its first member)
    own_map = _item_map(own_cum, slots * -(-max_len // chunk) * head_groups(kv_heads))
    node_map = (
        _item_map(tables.cum, slots * (width - 1) * head_groups(kv_heads)) if tables is not None else None
    )
    return GroupedPlan(
        tables, chunk, own_begin, own_pbase, own_cum, own_map, node_map, (own_pbase + chunks).to(torch.int32),
        torch.empty((slots, width, heads, head_dim), dtype=torch.float32, device=pos.device),
        torch.empty((slots, width, heads), dtype=torch.float32, device=pos.device),
    )  # fmt: skip


def _item_map(cum: torch.Tensor, items: int) -> torch.Tensor:
    at = torch.arange(items, dtype=cum.dtype, device=cum.device)
    return (torch.searchsorted(cum, at, right=True) - 1).clamp(0, cum.numel() - 2).to(torch.int32)


def decode_grouped(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, plan: GroupedPlan,
    scale: float | None, use_triton: bool | None = None,
) -> torch.Tensor:  # fmt: skip
    """Attention of each slot's query [S, Hq, D] over its cache positions ``0..pos[s]``
    (k_cache/v_cache [S, Hkv, L, D]), shared prefixes read once per tile (see the module docstring).
    ``use_triton`` (default: :func:`available`): the Triton kernels, else :func:`grouped_reference`
    (forced on for CPU tensors under ``TRITON_INTERPRET=1``)."""
    slots, heads, dim = query.shape
    kv_heads = k_cache.shape[1]
    scale = dim**-0.5 if scale is None else scale
    if not (available(query.device, dim) if use_triton is None else use_triton):
        return grouped_reference(query, k_cache, v_cache, pos, plan, scale)
    from evaluation.generation import grouped_triton as tk

    fold = heads // kv_heads
    po, pl = plan.partial_out, plan.partial_lse
    common = dict(
        KVH=kv_heads,
        FOLD=fold,
        D=dim,
        BLOCK_N=BLOCK_N,
        CH=plan.chunk,
        IEEE=query.dtype == torch.float32,
        HPI=heads_per_item(kv_heads),
    )
    strides = (*query.stride()[:2], *k_cache.stride()[:3], *po.stride()[:3], *pl.stride()[:2])
    programs = _sm_count(query.device) * PROGRAMS_PER_SM if query.is_cuda else 3
    launch = dict(num_warps=NUM_WARPS, num_stages=NUM_STAGES) if query.is_cuda else {}
    scale2 = scale * math.log2(math.e)
    tables = plan.tables
    main = torch.cuda.current_stream(query.device) if query.is_cuda else None
    side = _side_stream(query.device) if main is not None and STREAMS == 2 and tables is not None else None
    if side is not None:  # the own launch below runs beside this one (capturable: a fork and a join)
        side.wait_stream(main)
    if tables is not None:  # even with no node segments now: a captured step replays after a regroup
        with torch.cuda.stream(side) if side is not None else nullcontext():
            tk.partials[(programs,)](
                query, k_cache, v_cache, po, pl,
                tables.cum, plan.node_map, tables.src, tables.begin, tables.end, tables.mstart, tables.mcount,
                tables.pbase, tables.order, pos, slots, scale2, *strides,
                BLOCK_M=node_rows(fold), OWN=False, **common,
                **launch,
            )  # fmt: skip
    tk.partials[(programs,)](
        query, k_cache, v_cache, po, pl,
        plan.own_cum, plan.own_map, plan.own_begin, plan.own_begin, plan.own_begin, plan.own_begin, plan.own_begin,
        plan.own_pbase, plan.own_begin, pos, slots, scale2, *strides,
        BLOCK_M=max(OWN_ROWS, _pow2(fold)), OWN=True, **common,
        **launch,
    )  # fmt: skip
    if side is not None:
        main.wait_stream(side)
    out = torch.empty_like(query)
    tk.merge[(slots,)](
        po, pl, plan.counts, out, *po.stride()[:3], *pl.stride()[:2], *out.stride()[:2],
        HQ=heads, HQ_P2=_pow2(heads), D=dim,
    )  # fmt: skip
    return out


@cache
def _side_stream(device: torch.device) -> torch.cuda.Stream:
    return torch.cuda.Stream(device)


@cache
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def grouped_reference(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, plan: GroupedPlan,
    scale: float,
) -> torch.Tensor:  # fmt: skip
    """What the kernels compute, with torch (fp32 math): every work item's partials written where the
    kernel writes them, then each slot's first ``counts[s]`` partials merged. Reads the plan's tensors
    as the kernels do, so a wrong table gives a wrong answer here too."""
    slots, heads, dim = query.shape
    fold = heads // k_cache.shape[1]
    po, pl = plan.partial_out, plan.partial_lse
    po.fill_(float("nan"))  # a partial the merge reads but nothing wrote shows up
    pl.fill_(float("nan"))
    here = pos.tolist()

    def write(members: list[int], src: int, lo: int, hi: int, base: int) -> None:
        for c, first in enumerate(range(lo, hi, plan.chunk)):
            last = min(first + plan.chunk, hi)
            k = k_cache[src, :, first:last].float().repeat_interleave(fold, 0)  # [Hq, n, D]
            v = v_cache[src, :, first:last].float().repeat_interleave(fold, 0)
            for m in members:
                scores = torch.einsum("hd,hnd->hn", query[m].float(), k) * scale
                lse = torch.logsumexp(scores, -1)
                po[m, base + c] = torch.einsum("hn,hnd->hd", (scores - lse[:, None]).exp(), v)
                pl[m, base + c] = lse / math.log(2)

    tables = plan.tables
    if tables is not None and tables.layout is not None:
        t = {
            name: getattr(tables, name).tolist()
            for name in ("order", "src", "begin", "end", "mstart", "mcount", "pbase")
        }
        for g in range(len(tables.layout.begin)):
            members = t["order"][t["mstart"][g] : t["mstart"][g] + t["mcount"][g]]
            write(members, t["src"][g], t["begin"][g], t["end"][g], t["pbase"][g])
    for s, (begin, base) in enumerate(zip(plan.own_begin.tolist(), plan.own_pbase.tolist(), strict=True)):
        write([s], s, here[s] if begin < 0 else begin, here[s] + 1, base)
    out = torch.empty_like(query)
    for s, n in enumerate(plan.counts.tolist()):
        lse = pl[s, :n] * math.log(2)  # [n, Hq]
        weights = (lse - torch.logsumexp(lse, 0)).exp()
        out[s] = (weights[..., None] * po[s, :n]).sum(0).to(query.dtype)
    return out
