"""Tensor-level pieces of :mod:`evaluation.generation.engine`: decode state, masks, the attention kernel, graphs.

Everything here runs on the model's device with static shapes, so the decode step can be captured
in a CUDA graph: no host reads, no allocations that depend on values. Shapes: ``S`` slots, ``L``
cache positions, ``Hkv`` key/value heads, ``D`` head dim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from evaluation.generation.grouped import GroupedPlan, SegmentTables, decode_grouped, grouped_plan

ATTENTION_NAME = "forge_engine"
_ACTIVE: list[DecodeState] = []  # the state the registered attention function writes into


def h2d(data: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``data`` (a list or a CPU tensor) on ``device``. To a GPU it goes from pinned memory without
    blocking, so the host goes on preparing the next prefill group while the GPU still runs the last
    one (a plain ``torch.tensor(..., device=cuda)`` from a list waits for the GPU to drain first);
    torch keeps the pinned buffer until the copy is done."""
    t = data if isinstance(data, torch.Tensor) else torch.tensor(data, dtype=dtype)
    if torch.device(device).type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


@dataclass
class PrefillMode:
    """Prefill of left-padded prompts: ``slots`` [n] receive them, ``offsets`` [n] is each row's padding."""

    slots: torch.Tensor
    offsets: torch.Tensor
    width: int


@dataclass
class ExtendMode:
    """Prefill of the tokens a slot does not hold yet. Row ``r`` (``slots[r]``) already holds positions
    ``0..starts[r]-1`` in its cache; its new tokens come left-padded (``offsets[r]``) in a batch of
    ``width`` columns, go to positions ``starts[r]..``, and attend to the cached positions and to
    each other causally. ``attend``: cache positions read, at least ``max(starts + new lengths)``."""

    slots: torch.Tensor
    offsets: torch.Tensor
    starts: torch.Tensor
    width: int
    attend: int
    #: ``sdpa``: gather the rows' K/V (GQA heads repeated) and attend under an additive mask;
    #: ``varlen``: :func:`extend_varlen`, the flash kernel reading each row's slot in place
    #: (needs ``slots`` ascending and ``used`` = ``starts`` + each row's new tokens)
    kernel: str = "sdpa"
    used: torch.Tensor | None = None


@dataclass
class PackedMode:
    """:class:`ExtendMode` without padding: the rows' new tokens one after another in a single row of
    the batch (``cu_q[r]..cu_q[r+1]-1`` are row ``r``'s, at most ``max_q`` of them), each written to
    cache position ``tok_pos[t]`` of slot ``tok_slot[t]``; row ``r`` (slot ``slots[r]``, ascending)
    then holds ``used[r]`` positions, and its tokens attend them causally (:func:`varlen_rows`)."""

    slots: torch.Tensor
    cu_q: torch.Tensor
    max_q: int
    used: torch.Tensor
    tok_slot: torch.Tensor
    tok_pos: torch.Tensor
    attend: int


#: Decode attention kernels (:class:`DecodeMode`): ``sdpa`` is ``F.scaled_dot_product_attention``
#: with the additive mask (the backend picks the kernel, cuDNN's flash on Hopper); ``matmul`` is two
#: batched GEMMs (scores in fp32) and a softmax, which read each slot's K/V once: decode attends one
#: query row per K/V head group, so a flash kernel's query tile is mostly padding. Both read
#: ``attend`` positions of every slot, busy or idle. ``varlen`` is the flash kernel's variable-length
#: form told each slot's own length (:func:`decode_varlen`): it reads the positions each slot holds
#: and nothing past them, so a batch of short conversations beside one long one no longer pays the
#: long one's length on every slot. ``flex`` reads the same positions with FlexAttention's decoding
#: kernel (:func:`decode_flex`), which splits a slot's positions over the GPU.
#: ``grouped`` (:mod:`evaluation.generation.grouped`, Triton) reads every prefix that several slots hold
#: once per step for all of them, at every depth it is shared, in chunks spread over the GPU.
DECODE_KERNELS = ("sdpa", "matmul", "varlen", "cascade", "flex", "grouped")
#: the kernels that read each slot's own length (``state.pos``) rather than ``attend`` positions under a mask
PER_SLOT_KERNELS = ("varlen", "cascade", "flex", "grouped")
#: the kernels that read a prefix several slots' caches hold from one of them (keyed requests)
SHARING_KERNELS = ("cascade", "flex", "grouped")


@dataclass
class CascadeGroups:
    """Which slots of a decode step share a cached prefix (:func:`decode_cascade`), as device tensors of
    static shape (a CUDA graph reads them; :meth:`fill` rewrites them in place between steps). ``perm``
    orders the slots group by group; group ``g`` is ``perm[cu_q[g]:cu_q[g+1]]`` and reads the first
    ``used[g]`` rows of the cache from row ``cu_k[g]`` on (one member's slot); ``prefix[s]`` is what slot
    ``s`` reads there (0: none, its whole length on its own)."""

    perm: torch.Tensor
    inverse: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    used: torch.Tensor
    prefix: torch.Tensor
    leader: torch.Tensor  # the first member of slot ``s``'s group (``s`` itself when it reads alone)
    #: ``flex`` block sharing (:meth:`fill_blocks`): [S, blocks], the slot whose copy of each block slot
    #: ``s`` reads (``s`` itself for a block it alone holds); ``None``: groups as above
    sources: torch.Tensor | None = None

    def fill_blocks(self, order: list[int], lcp: list[int], blocks: int) -> None:
        """Block sharing for :func:`flex_plan`: slots sorted by what they hold (``order``, all slots) and
        ``lcp[i]``, the tokens ``order[i]`` and ``order[i + 1]`` hold alike; every whole
        :data:`FLEX_BLOCK` block that several slots hold is read from one of them (:func:`block_sources`),
        so a prefix shared at several depths -- tools by many slots, a first turn by two of them -- is
        read once at each depth, not only at the depth one group shares. Rows go in ``order``."""
        table = block_sources(order, lcp, blocks)
        if self.sources is None or self.sources.shape != (len(order), blocks):
            self.sources = torch.empty((len(order), blocks), dtype=torch.long, device=self.perm.device)
        inverse = [0] * len(order)
        for i, slot in enumerate(order):
            inverse[slot] = i
        for tensor, values in ((self.sources, table), (self.perm, order), (self.inverse, inverse)):
            tensor.copy_(h2d(torch.tensor(values, dtype=tensor.dtype), tensor.device), non_blocking=True)

    @classmethod
    def allocate(cls, slots: int, device: torch.device) -> CascadeGroups:
        def i32(n: int) -> torch.Tensor:
            return torch.zeros(n, dtype=torch.int32, device=device)

        perm = torch.arange(slots, device=device)
        groups = cls(
            perm, perm.clone(), i32(slots + 1), i32(slots + 1), i32(slots), i32(slots), perm.clone()
        )  # fmt: skip
        groups.fill([], slots, 1)
        return groups

    def fill(self, groups: list[tuple[list[int], int]], slots: int, rows_per_slot: int) -> None:
        """``groups``: (member slots, shared prefix length) each; every other slot reads alone. Slots
        reading alone are groups of one reading their own first row (masked out of the result), so no
        group is ever empty of keys; the unused group entries are empty."""
        self.sources = None  # groups, not block sharing
        order, cu_q, cu_k, used, prefix, leader = [], [0], [], [], [0] * slots, list(range(slots))
        for members, length in groups:
            order += members
            cu_q.append(len(order))
            cu_k.append(members[0] * rows_per_slot)
            used.append(length)
            for m in members:
                prefix[m], leader[m] = length, members[0]
        for s in sorted(set(range(slots)) - set(order)):
            order.append(s)
            cu_q.append(len(order))
            cu_k.append(s * rows_per_slot)
            used.append(1)
        pad = slots - len(used)
        cu_q += [slots] * pad
        cu_k += [0] * pad
        used += [1] * pad
        cu_k.append(cu_k[-1] + rows_per_slot)
        inverse = [0] * slots
        for i, s in enumerate(order):
            inverse[s] = i
        for tensor, values in (
            (self.perm, order), (self.inverse, inverse), (self.cu_q, cu_q), (self.cu_k, cu_k),
            (self.used, used), (self.prefix, prefix), (self.leader, leader),
        ):  # fmt: skip
            tensor.copy_(h2d(torch.tensor(values, dtype=tensor.dtype), tensor.device), non_blocking=True)


@dataclass
class DecodeMode:
    """One token per slot; attention reads the first ``attend`` cache positions with ``kernel``
    (one of :data:`DECODE_KERNELS`)."""

    attend: int
    kernel: str = "sdpa"
    groups: CascadeGroups | SegmentTables | None = None  # sharing kernels: the slots sharing a prefix
    flex_split: int = 0  # ``flex``: :func:`flex_plan`'s ``split``
    flex_rows: int = 1  # ``flex``: slots per kernel row (> 1: :func:`packed_flex_plan`)
    flex_options: tuple[tuple[str, int], ...] = ()  # ``flex``: :func:`flex_plan`'s ``options``
    flex_cascade: int = 0  # ``flex`` with groups: members per level-1 row (> 0: :func:`cascade_flex_plan`)
    plan: FlexPlan | PackedFlexPlan | CascadeFlexPlan | GroupedPlan | None = (
        None  # ``flex``, ``grouped``: this step's, made by its first layer
    )


@dataclass
class DecodeState:
    """Preallocated per-slot tensors. ``pos[s]`` is the position of ``tokens[s]``, the next input;
    ``out[s, :n_gen[s]]`` the tokens generated so far; ``active[s]`` false once a stop fired."""

    slots: int
    max_len: int
    max_new: int
    k: list[torch.Tensor]
    v: list[torch.Tensor]
    tokens: torch.Tensor
    pos: torch.Tensor
    n_gen: torch.Tensor
    active: torch.Tensor
    out: torch.Tensor
    rows: torch.Tensor
    mode: PrefillMode | ExtendMode | PackedMode | DecodeMode | None = None

    @classmethod
    def allocate(
        cls, slots: int, max_len: int, max_new: int, n_layers: int, kv_heads: int, head_dim: int,
        dtype: torch.dtype, device: torch.device,
    ) -> DecodeState:  # fmt: skip
        shape = (slots, kv_heads, max_len, head_dim)
        zeros = lambda *s, dt=torch.long: torch.zeros(s, dtype=dt, device=device)  # noqa: E731
        return cls(
            slots, max_len, max_new,
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)],
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)],
            zeros(slots), zeros(slots), zeros(slots), zeros(slots, dt=torch.bool), zeros(slots, max_new),
            torch.arange(slots, device=device),
        )  # fmt: skip

    def start(
        self, slots: list[int], lengths: list[int], first: torch.Tensor, stops: torch.Tensor, max_new: int,
        seqs: torch.Tensor | None = None, seq_pad: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        """Seat prefilled prompts: their first generated token becomes the next decode input."""
        idx = h2d(slots, self.tokens.device)
        self.tokens[idx] = first
        self.pos[idx] = h2d(lengths, self.tokens.device)
        # index_fill_ takes the value as a scalar argument; ``self.out[idx] = 0`` copies a CPU scalar
        # tensor to the device, a host sync per admission group (seen with set_sync_debug_mode)
        self.out.index_fill_(0, idx, 0)
        self.out[idx, 0] = first
        self.n_gen.index_fill_(0, idx, 1)
        stopped = (first[:, None] == stops[None, :]).any(-1)
        if seqs is not None:
            stopped = stopped | sequence_hit(self.out[idx], self.n_gen[idx], seqs, seq_pad)
        self.active[idx] = ~stopped & (max_new > 1)

    def advance(
        self, nxt: torch.Tensor, stops: torch.Tensor, seqs: torch.Tensor | None, seq_pad: torch.Tensor | None
    ) -> None:
        """Record ``nxt`` for active slots and update stop flags, all in place (graph-safe)."""
        act = self.active
        col = self.n_gen.clamp(max=self.max_new - 1)
        self.out[self.rows, col] = torch.where(act, nxt, self.out[self.rows, col])
        self.n_gen += act.long()
        hit = (nxt[:, None] == stops[None, :]).any(-1)
        if seqs is not None:
            hit = hit | sequence_hit(self.out, self.n_gen, seqs, seq_pad)
        self.active.copy_(act & ~hit & (self.n_gen < self.max_new))
        self.tokens.copy_(nxt)
        self.pos.copy_((self.pos + 1).clamp(max=self.max_len - 1))

    def narrow(self, start: int, stop: int) -> DecodeState:
        """Slots ``start..stop-1`` as a state of their own: views of these tensors (writes land here),
        so a decode step on it computes and captures those slots only."""
        return DecodeState(
            stop - start, self.max_len, self.max_new,
            [k[start:stop] for k in self.k], [v[start:stop] for v in self.v],
            self.tokens[start:stop], self.pos[start:stop], self.n_gen[start:stop],
            self.active[start:stop], self.out[start:stop], self.rows[: stop - start],
        )  # fmt: skip

    def resize(self, slots: int, max_len: int, max_new: int) -> None:
        """Grow to ``slots`` slots of ``max_len`` positions (never shrinks), keeping what the slots
        hold, and size the output buffer for ``max_new`` tokens. Layer by layer, so the peak is one
        layer above the cache. New slots are idle and hold nothing."""
        slots, max_len = max(slots, self.slots), max(max_len, self.max_len)
        if (slots, max_len) != (self.slots, self.max_len):
            for cache in (self.k, self.v):
                for layer, old in enumerate(cache):
                    new = old.new_zeros((slots, old.shape[1], max_len, old.shape[3]))
                    new[: self.slots, :, : self.max_len] = old
                    cache[layer] = new
            for name in ("tokens", "pos", "n_gen", "active"):
                old = getattr(self, name)
                new = old.new_zeros(slots)
                new[: self.slots] = old
                setattr(self, name, new)
            self.rows = torch.arange(slots, device=self.rows.device)
        if (slots, max_new) != (self.slots, self.max_new):
            self.out = self.out.new_zeros((slots, max_new))
        self.slots, self.max_len, self.max_new = slots, max_len, max_new

    def shrink_slots(self, slots: int) -> None:
        """Keep the first ``slots`` slots only (each tensor copied to its new size, the old one freed
        layer by layer); what the others held is gone."""
        if slots >= self.slots:
            return
        for cache in (self.k, self.v):
            for layer, old in enumerate(cache):
                cache[layer] = old[:slots].clone()
        for name in ("tokens", "pos", "n_gen", "active", "out"):
            setattr(self, name, getattr(self, name)[:slots].clone())
        self.rows = torch.arange(slots, device=self.rows.device)
        self.slots = slots

    def nbytes(self) -> int:
        """Bytes of the K/V cache (every layer, keys and values)."""
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    def copy_prefix(self, dst: list[int], src: list[int], begin: list[int], end: list[int]) -> None:
        """Copy cache positions ``begin[i]..end[i]-1`` of slot ``src[i]`` into slot ``dst[i]`` (every
        layer, one gather then one scatter per layer). The per-position indices are built on the device
        from the copies' few numbers (on the host they were ~3e6 positions over BFCL's rounds)."""
        lengths = [e - b for b, e in zip(begin, end, strict=True)]
        total = sum(lengths)
        if total == 0:
            return
        device = self.tokens.device
        small = h2d([lengths, begin, dst, src], device)
        first = small[0].cumsum(0) - small[0] - small[1]  # position p of copy i sits at p + first[i]
        per = lambda row: row.repeat_interleave(small[0], output_size=total)  # noqa: E731  no host sync
        pos = torch.arange(total, device=device) - per(first)
        to, fro = per(small[2]), per(small[3])
        for cache in (self.k, self.v):
            for layer in cache:
                layer[to, :, pos] = layer[fro, :, pos]

    def harvest(self, slots: list[int]) -> list[list[int]]:
        """Generated ids of finished ``slots`` (one device-to-host copy)."""
        idx = h2d(slots, self.out.device)
        rows = torch.cat([self.n_gen[idx, None], self.out[idx]], 1).tolist()  # one wait, not two
        return [row[1 : 1 + row[0]] for row in rows]


def pack_sequences(
    sequences: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Stop sequences right-aligned in a ``[n, W]`` tensor plus a mask of the (wildcard) padding."""
    seqs = [list(map(int, s)) for s in sequences if len(s) > 0]
    if not seqs:
        return None, None
    width = max(len(s) for s in seqs)
    packed = torch.full((len(seqs), width), -1, dtype=torch.long)
    for row, seq in enumerate(seqs):
        packed[row, width - len(seq) :] = torch.tensor(seq)
    return packed.to(device), (packed < 0).to(device)


def sequence_hit(
    out: torch.Tensor, n_gen: torch.Tensor, seqs: torch.Tensor, pad: torch.Tensor
) -> torch.Tensor:
    """[S] bool: the generated tokens of each slot end with one of the stop sequences."""
    width = seqs.shape[1]
    cols = n_gen[:, None] - width + torch.arange(width, device=out.device)[None, :]
    window = out.gather(1, cols.clamp(min=0))
    window = torch.where(cols >= 0, window, torch.full_like(window, -2))  # before the start: matches nothing
    return ((window[:, None, :] == seqs[None]) | pad[None]).all(-1).any(-1)


def round_up(n: int, bucket: int, limit: int) -> int:
    """``n`` rounded up to a multiple of ``bucket``, at most ``limit``."""
    return min(limit, -(-n // bucket) * bucket)


def prefill_mask(offsets: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """[n, 1, T, T] additive mask: causal over each row's real tokens; a padding query sees itself
    only (so no row is fully masked and no NaN reaches the real tokens)."""
    ar = torch.arange(width, device=offsets.device)
    causal = ar[None, :] <= ar[:, None]
    real_key = ar[None, None, :] >= offsets[:, None, None]
    visible = (causal[None] & real_key) | torch.eye(width, dtype=torch.bool, device=offsets.device)[None]
    return _additive(visible[:, None], dtype)


def extend_mask(
    offsets: torch.Tensor, starts: torch.Tensor, width: int, attend: int, dtype: torch.dtype
) -> torch.Tensor:
    """[n, 1, width, attend] additive mask for :class:`ExtendMode`: the query in column ``c`` of row
    ``r`` sits at position ``starts[r] + c - offsets[r]`` and sees cache positions up to its own. A
    padding query sees position 0 at least (never a fully masked row, so no NaN)."""
    query_pos = extend_positions(offsets, starts, width)
    visible = torch.arange(attend, device=offsets.device)[None, None, :] <= query_pos[:, :, None]
    return _additive(visible[:, None], dtype)


def extend_positions(offsets: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
    """[n, width] position of each column of an :class:`ExtendMode` batch (padding clamped to >= 0)."""
    cols = torch.arange(width, device=offsets.device)[None, :]
    return (starts[:, None] + cols - offsets[:, None]).clamp(min=0)


def decode_mask(pos: torch.Tensor, attend: int, dtype: torch.dtype) -> torch.Tensor:
    """[S, 1, 1, attend] additive mask: slot ``s`` sees cache positions ``0..pos[s]``."""
    visible = torch.arange(attend, device=pos.device)[None, :] <= pos[:, None]
    return _additive(visible[:, None, None, :], dtype)


def _additive(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    zero = torch.zeros((), dtype=dtype, device=visible.device)
    return torch.where(visible, zero, torch.finfo(dtype).min)


def _attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor,
    scaling: float | None = None, **_: Any,
) -> tuple[torch.Tensor, None]:  # fmt: skip
    """Attention with the engine's cache. query [B, Hq, q, D], key/value [B, Hkv, q, D] (new
    tokens only, rotary applied); returns [B, q, Hq, D] like transformers' attention functions."""
    state = _ACTIVE[-1]
    layer, mode = module.layer_idx, state.mode
    groups = query.shape[1] // key.shape[1]
    if isinstance(mode, DecodeMode):
        state.k[layer][state.rows, :, state.pos] = key[:, :, 0]
        state.v[layer][state.rows, :, state.pos] = value[:, :, 0]
        keys = state.k[layer][:, :, : mode.attend]
        values = state.v[layer][:, :, : mode.attend]
        bsz, heads, _, dim = query.shape
        # Grouped-query heads share a K/V head: fold the group into the query length (no K/V copy).
        if mode.kernel == "varlen" or (mode.kernel == "cascade" and mode.groups is None):
            out = decode_varlen(
                query[:, :, 0], state.k[layer], state.v[layer], state.pos, mode.attend, scaling
            )
            return out[:, None], None
        if mode.kernel == "flex" and query.is_cuda and state.k[layer].numel() > FLEX_INDEX_LIMIT:
            out = decode_varlen(
                query[:, :, 0], state.k[layer], state.v[layer], state.pos, mode.attend, scaling
            )
            return out[:, None], None
        if mode.kernel == "flex":
            cascade = mode.flex_cascade > 0 and mode.groups is not None and mode.groups.sources is None
            if mode.plan is None and cascade:  # once per step: every layer reads the same blocks
                mode.plan = cascade_flex_plan(
                    state.pos, key.shape[1], state.max_len, mode.groups, mode.flex_cascade, mode.flex_split,
                    mode.flex_options,
                )  # fmt: skip
            elif mode.plan is None and mode.flex_rows > 1:
                mode.plan = packed_flex_plan(
                    state.pos, key.shape[1], state.max_len, mode.groups, mode.flex_rows, mode.flex_split
                )  # fmt: skip
            elif mode.plan is None:
                mode.plan = flex_plan(
                    state.pos, key.shape[1], state.max_len, mode.groups, mode.flex_split,
                    options=mode.flex_options,
                )  # fmt: skip
            out = decode_flex(
                query[:, :, 0], state.k[layer], state.v[layer], state.pos, scaling, plan=mode.plan
            )
            return out[:, None], None
        if mode.kernel == "grouped":
            if mode.plan is None:  # once per step: every layer reads the same segments
                mode.plan = grouped_plan(
                    state.pos, mode.groups, key.shape[1], heads, dim, state.max_len
                )  # fmt: skip
            out = decode_grouped(
                query[:, :, 0], state.k[layer], state.v[layer], state.pos, mode.plan, scaling
            )
            return out[:, None], None
        if mode.kernel == "cascade":
            out = decode_cascade(
                query[:, :, 0], state.k[layer], state.v[layer], state.pos, mode.groups, mode.attend, scaling
            )
            return out[:, None], None
        folded = query.reshape(bsz, key.shape[1], groups, dim)
        if mode.kernel == "matmul":
            out = decode_matmul(folded, keys, values, attention_mask, scaling)
        else:
            out = F.scaled_dot_product_attention(
                folded, keys, values, attn_mask=attention_mask, scale=scaling
            )
        return out.reshape(bsz, heads, 1, dim).transpose(1, 2), None
    if isinstance(mode, ExtendMode):
        return _extend(state, layer, mode, query, key, value, attention_mask, scaling, groups)
    if isinstance(mode, PackedMode):  # one row of packed tokens: [1, H, T, D]
        state.k[layer][mode.tok_slot, :, mode.tok_pos] = key[0].transpose(0, 1)
        state.v[layer][mode.tok_slot, :, mode.tok_pos] = value[0].transpose(0, 1)
        out = varlen_rows(
            query[0].transpose(0, 1), state.k[layer], state.v[layer], mode.slots, mode.cu_q, mode.max_q,
            mode.used, mode.attend, scaling,
        )  # fmt: skip
        return out[None], None
    if not isinstance(mode, PrefillMode):
        raise RuntimeError("engine attention called outside a prefill or decode step")
    # Left-padded rows: shift each row so its first real token lands at cache position 0.
    width = mode.width
    src = (torch.arange(width, device=key.device)[None, :] + mode.offsets[:, None]).clamp(max=width - 1)
    src = src[:, None, :, None].expand(-1, key.shape[1], -1, key.shape[3])
    state.k[layer][:, :, :width].index_copy_(0, mode.slots, key.gather(2, src))
    state.v[layer][:, :, :width].index_copy_(0, mode.slots, value.gather(2, src))
    if groups > 1:
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling)
    return out.transpose(1, 2), None


def decode_matmul(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """Attention as two batched GEMMs. query [S, H, G, D] (G query heads per K/V head), keys/values
    [S, H, A, D] (views of the cache: no copy), mask [S, 1, 1, A] additive; returns [S, H, G, D].
    Scores and softmax in fp32 (on CUDA the GEMM writes fp32 from bf16/fp16 inputs); the
    probabilities are cast to the values' dtype for the second GEMM, as flash kernels do."""
    s, h, g, d = query.shape
    scale = d**-0.5 if scale is None else scale
    q, k, v = query.reshape(s * h, g, d), keys.reshape(s * h, -1, d), values.reshape(s * h, -1, d)
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        scores = torch.bmm(q, k.transpose(1, 2), out_dtype=torch.float32)
    else:
        scores = torch.bmm(q.float(), k.transpose(1, 2).float())
    scores = scores.view(s, h, g, -1).mul_(scale).add_(mask)
    probs = scores.softmax(dim=-1).to(v.dtype).view(s * h, g, -1)
    return torch.bmm(probs, v).view(s, h, g, d)


def decode_varlen(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, attend: int,
    scale: float | None,
) -> torch.Tensor:  # fmt: skip
    """Decode attention that reads slot ``s``'s positions ``0..pos[s]`` only. query [S, Hq, D] (one
    token per slot), k_cache/v_cache [S, Hkv, L, D] (the engine's cache, not copied); returns
    [S, Hq, D]. ``attend`` bounds every ``pos + 1`` (the kernel's work split is planned for it).

    The cache is handed to the flash kernel's variable-length form as it lies: viewed as rows of
    ``D`` with a row stride of ``D`` and a head stride of ``L*D``, slot ``s``'s sequence starts at row
    ``s*Hkv*L`` (``cu_seq_k``), and ``seqused_k = pos + 1`` says how many of its rows count. All of
    it is device tensors of static shape, so the step stays capturable in a CUDA graph. The query heads
    sharing a K/V head go in as that head's queries (:func:`fold_gqa`), so each slot's K/V is read once.
    Off CUDA (tests) :func:`varlen_reference` computes the same thing from the same view and offsets."""
    slots, kv_heads, length, dim = k_cache.shape
    groups = query.shape[1] // kv_heads
    cu_q = torch.arange(slots + 1, dtype=torch.int32, device=query.device)
    cu_k = cu_q * (kv_heads * length)
    used = (pos + 1).to(torch.int32)
    scale = dim**-0.5 if scale is None else scale
    folded = fold_gqa(query, kv_heads)
    if not query.is_cuda:
        out = varlen_reference(
            folded, cache_rows(k_cache), cache_rows(v_cache), cu_k, used, scale, cu_q * groups, False
        )
    else:
        out = torch.ops.aten._flash_attention_forward(
            folded, cache_rows(k_cache), cache_rows(v_cache), cu_q * groups, cu_k, groups, attend, 0.0,
            False, False, scale=scale, seqused_k=used,
        )[0]  # fmt: skip
    return unfold_gqa(out, query.shape[1])


#: :func:`decode_flex`'s K/V block: a slot's step reads its positions in blocks of this many
FLEX_BLOCK = 128
#: the largest cache (elements per layer) :func:`decode_flex` takes on CUDA: past it the compiled kernel
#: indexes in int64, and torch 2.11's decoding template then fails to compile (``Ternary expression with
#: dynamic condition has inconsistent types int64 and int32``, seen on an H200 with 256 slots x 16,384
#: positions); the engine decodes such a cache with :func:`decode_varlen`
FLEX_INDEX_LIMIT = 2**31 - 1
#: CTAs per row of the flex kernel when a step reads shared prefixes: a group's rows then walk the same
#: blocks side by side, and the L2 cache serves all but the first (``bench/flex_decode.py``, H200: 0.83 ms
#: a step vs 1.14 ms with PyTorch's default of 1 for 2,048 rows; 4 beat 2 and 8)
FLEX_SHARED_SPLIT = 4
#: CTAs per row of the flex kernel in the packed layout (:func:`packed_flex_plan`; a row lists many
#: slots' blocks): ``bench/flex_decode.py`` on an H200, 4 slots a row with 8 CTAs 0.76 ms
FLEX_PACKED_SPLIT = 8
_FLEX: list[Callable[..., torch.Tensor]] = []  # the compiled flex_attention, made on first use
#: compiled variants of the flex kernel a process may hold (one per cache shape, layout and split):
#: past torch's default of 8, dynamo would run flex_attention eagerly -- the unfused form, which
#: scores every row against the whole cache (it asked for 3 TiB on an H200); past this it raises
FLEX_COMPILES = 64
#: the flex decoding kernel's Triton options (:func:`_flex`), the engine's default on sm_90
#: (``EngineConfig.flex_options``): PyTorch 2.11 picks BLOCK_N 64 with one stage and two warps on sm_90
#: (no K/V loads in flight while a tile computes); three stages took BFCL's 17 real decode batches on an
#: H200 from 14.08 to 11.56 ms (1.22x; ``bench/flex_decode.py --batches ... --options``, twelve sets,
#: 64:3:2 the fastest) and the 800 conversations from 28.9 to 27.6 s, same replies
FLEX_DECODE_OPTIONS: tuple[tuple[str, int], ...] = (("BLOCK_N", 64), ("num_stages", 3), ("num_warps", 2))


def _flex(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: Any, scale: float | None, split: int,
    options: tuple[tuple[str, int], ...] = (), lse: bool = False,
) -> Any:  # fmt: skip
    """The compiled ``flex_attention`` (made on first use) with ``SPLIT_KV`` ``split`` (0: PyTorch's) and
    the decoding kernel's other Triton ``options`` (``BLOCK_N``, ``num_stages``, ``num_warps``; none:
    PyTorch's choice, on sm_90 BLOCK_N 64, one stage, two warps). Each distinct set compiles a variant.
    ``lse``: (output, natural-log log-sum-exp of each query's scores) -- -inf for a row that reads nothing."""
    import torch._dynamo

    if not _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX.append(torch.compile(flex_attention, dynamic=False))
    options = {**dict(options), **({"SPLIT_KV": split} if split else {})} or None
    extra: dict[str, Any] = {}
    if lse:
        from torch.nn.attention import flex_attention as flex_module

        aux = getattr(flex_module, "AuxRequest", None)  # torch >= 2.9; return_lse before
        extra = {"return_aux": aux(lse=True)} if aux is not None else {"return_lse": True}
    with torch._dynamo.config.patch(recompile_limit=FLEX_COMPILES, fail_on_recompile_limit_hit=True):
        out = _FLEX[0](
            q, keys, values, block_mask=mask, scale=scale, enable_gqa=True, kernel_options=options, **extra
        )
    if lse and "return_aux" in extra:
        return out[0], out[1].lse
    return out


def block_sources(order: list[int], lcp: list[int], blocks: int, block: int = FLEX_BLOCK) -> list[list[int]]:
    """Per slot (rows indexed by slot), the slot to read each of its ``blocks`` blocks of ``block``
    positions from: slots sorted by the ids they hold (``order``), ``lcp[i]`` the ids ``order[i]`` and
    ``order[i + 1]`` share; the slots holding the same first ``(j + 1) * block`` ids are a run of
    ``order``, and block ``j`` of each is read from the run's first slot."""
    sources = [[slot] * blocks for slot in range(len(order))]
    for i, slot in enumerate(order):
        # scanning back, the whole blocks shared with every slot from order[k] to this one only shrink;
        # spans: (depth, the furthest-back k still sharing that many), deepest first
        depth, spans = blocks, []
        for k in range(i - 1, -1, -1):
            depth = min(depth, lcp[k] // block)
            if depth == 0:
                break
            if spans and spans[-1][0] == depth:
                spans[-1] = (depth, k)
            else:
                spans.append((depth, k))
        row, low = sources[slot], 0
        for depth, k in reversed(spans):  # blocks low..depth-1: from the furthest slot sharing them
            row[low:depth] = [order[k]] * (depth - low)
            low = depth
    return sources


@dataclass
class FlexPlan:
    """One decode step's :func:`decode_flex` layout, the same for every layer (built once per step):
    row ``r = h * S + j`` is K/V head ``h`` of slot ``order[j]``; ``index[r]`` names the cache blocks it
    reads (the cache seen as one sequence of ``S * Hkv * L`` positions) and ``row_pos[r]`` the last
    position it sees; ``inverse`` undoes ``order``; ``mask``: the block mask (CUDA only)."""

    order: torch.Tensor
    inverse: torch.Tensor
    index: torch.Tensor
    row_pos: torch.Tensor
    length: int
    mask: Any = None
    split: int = 0
    options: tuple[tuple[str, int], ...] = ()  # the kernel's other Triton options (:func:`_flex`)


@dataclass
class PackedFlexPlan:
    """:func:`decode_flex`'s packed layout for one decode step (built once per step, as
    :class:`FlexPlan`): ``members`` [R, M] puts ``M`` slots in each of ``R`` rows (in ``groups``'
    order, group by group; -1 pads the last row); kernel row ``h * R + r`` is K/V head ``h`` of row
    ``r``, its ``M`` slots are its query positions, and ``index``/``count`` list each row's cache
    blocks once: every member's own blocks, and once per row the shared prefix blocks of each group
    with a member there, from the group's first member. Slot ``s`` sits at ``(row[s], col[s])``;
    ``leader``/``prefix``: per slot, where its shared prefix lies and how long it is (``s`` and 0
    alone); ``mask``: the block mask (CUDA only)."""

    members: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    index: torch.Tensor
    count: torch.Tensor
    leader: torch.Tensor
    prefix: torch.Tensor
    pos: torch.Tensor
    length: int
    stride: int
    mask: Any = None
    split: int = 0

    def visible(self, b: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Whether query ``q`` of kernel row ``b`` sees position ``kv`` of the cache (seen as one
        sequence): its slot's own positions up to its position, past the shared prefix, and the
        prefix's from its group's first member (the block mask's ``mask_mod``; the CPU reference)."""
        member = self.members[b % self.members.shape[0], q]
        slot = member.clamp(min=0)
        source, offset, shared = kv // self.stride, kv % self.length, self.prefix[slot]
        own = (source == member) & (offset >= shared)
        return (offset <= self.pos[slot]) & (own | ((source == self.leader[slot]) & (offset < shared)))


def packed_flex_plan(
    pos: torch.Tensor, kv_heads: int, length: int, groups: CascadeGroups | None, per_row: int, split: int = 0
) -> PackedFlexPlan:  # fmt: skip
    """:class:`PackedFlexPlan` for slots at positions ``pos``, ``per_row`` slots a row. Members of a
    group sit side by side (``groups.perm``), so a row reads a group's prefix once for all its members
    there: the K/V read is each distinct position once per row, and the kernel's tile holds ``per_row``
    slots' query heads (one shared block's scores for all of them). A member's own blocks start at the
    block holding the prefix's end (positions before it masked: they are the prefix); the leader's
    own blocks start after the prefix blocks, which list that block already."""
    slots, blocks, device = pos.shape[0], length // FLEX_BLOCK, pos.device
    if length % FLEX_BLOCK:
        raise ValueError(f"decode_flex needs a cache length that is a multiple of {FLEX_BLOCK}, not {length}")
    rows = -(-slots // per_row)
    if groups is None:
        order = inverse = leader = torch.arange(slots, device=device)
        prefix = torch.zeros(slots, dtype=torch.long, device=device)
    else:
        order, inverse, leader, prefix = groups.perm, groups.inverse, groups.leader, groups.prefix.long()
    members = torch.cat([order, order.new_full((rows * per_row - slots,), -1)]).view(rows, per_row)
    valid, member = members >= 0, members.clamp(min=0)
    lead, shared = leader[member], prefix[member]
    whole = ((shared + FLEX_BLOCK - 1) // FLEX_BLOCK).clamp(max=blocks)
    first = valid.clone()  # the first of its group in the row lists the group's prefix blocks
    first[:, 1:] &= lead[:, 1:] != lead[:, :-1]
    start = torch.where(member == lead, whole, (shared // FLEX_BLOCK).clamp(max=blocks))
    own = torch.where(valid, (pos[member].long() // FLEX_BLOCK + 1 - start).clamp(min=0), 0)
    # segments per row: (prefix, own blocks) per member, the prefix empty but for a group's first
    seg_len = torch.stack([torch.where(first, whole, 0), own], -1).view(rows, 2 * per_row)
    seg_start = torch.stack([torch.zeros_like(start), start], -1).view(rows, 2 * per_row)
    seg_source = torch.stack([lead, member], -1).view(rows, 2 * per_row)
    ends = seg_len.cumsum(1)
    width = per_row * (blocks + 1)  # a member lists at most its slot's blocks and one more
    col = torch.arange(width, device=device).expand(rows, width).contiguous()
    seg = torch.searchsorted(ends, col, right=True).clamp(max=2 * per_row - 1)
    block = (seg_start.gather(1, seg) + col - ends.gather(1, seg) + seg_len.gather(1, seg)).clamp(
        0, blocks - 1
    )
    base = seg_source.gather(1, seg) * (kv_heads * blocks) + block
    head = torch.arange(kv_heads, device=device)[:, None, None] * blocks
    plan = PackedFlexPlan(
        members, inverse // per_row, inverse % per_row,
        (base[None] + head).view(kv_heads * rows, width).to(torch.int32),
        ends[:, -1].repeat(kv_heads).to(torch.int32), leader, prefix, pos, length, kv_heads * length,
        split=split,
    )  # fmt: skip
    if pos.is_cuda:
        from torch.nn.attention.flex_attention import BlockMask

        def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return plan.visible(b, q, kv)

        z = plan.count.shape[0]
        plan.mask = BlockMask.from_kv_blocks(
            plan.count.view(z, 1, 1), plan.index.view(z, 1, 1, width), BLOCK_SIZE=(FLEX_BLOCK, FLEX_BLOCK),
            mask_mod=mask_mod, seq_lengths=(per_row, slots * kv_heads * length), compute_q_blocks=False,
        )  # fmt: skip
    return plan


def _decode_flex_packed(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float | None, plan: PackedFlexPlan
) -> torch.Tensor:  # fmt: skip
    """:func:`decode_flex` on a :class:`PackedFlexPlan`: a row's slots are the queries of one kernel
    row (their query heads the tile's rows), so a block one of them reads is read once for all."""
    slots, kv_heads, length, dim = k_cache.shape
    heads = query.shape[1]
    fold, (rows, per_row) = heads // kv_heads, plan.members.shape
    z = kv_heads * rows
    q = query.view(slots, kv_heads, fold, dim)[plan.members.clamp(min=0)]  # [R, M, Hkv, G, D]
    q = q.permute(2, 0, 3, 1, 4).reshape(z, fold, per_row, dim)
    keys, values = (cache.view(1, 1, slots * kv_heads * length, dim) for cache in (k_cache, v_cache))
    if query.is_cuda:
        out = _flex(q, keys, values, plan.mask, scale, plan.split)
    else:  # the reference: each row's listed blocks gathered, the same visibility as the mask
        width = plan.index.shape[1] * FLEX_BLOCK
        index = plan.index.long()
        kv = (index[..., None] * FLEX_BLOCK + torch.arange(FLEX_BLOCK, device=query.device)).view(z, width)
        listed = torch.arange(width, device=query.device)[None, :] < plan.count[:, None] * FLEX_BLOCK
        b = torch.arange(z, device=query.device)[:, None, None]
        q_at = torch.arange(per_row, device=query.device)[None, :, None]
        seen = plan.visible(b, q_at, kv[:, None, :]) & listed[:, None, :]  # [Z, M, width]
        gathered = [c.view(-1, FLEX_BLOCK, dim)[index].view(z, 1, width, dim) for c in (keys, values)]
        out = F.scaled_dot_product_attention(
            q, *gathered, attn_mask=seen[:, None], scale=scale, enable_gqa=True
        )  # fmt: skip
    out = out.view(kv_heads, rows, fold, per_row, dim).permute(1, 3, 0, 2, 4)  # [R, M, Hkv, G, D]
    return out[plan.row, plan.col].reshape(slots, heads, dim)


@dataclass
class CascadeFlexPlan:
    """:func:`decode_flex`'s cascade layout for one decode step (``EngineConfig.flex_cascade``; built once
    per step, as :class:`FlexPlan`). Level 1: each group's whole :data:`FLEX_BLOCK` blocks of its shared
    prefix, read from its first member's copy, with up to ``M`` members' queries in one kernel row
    (``members`` [R, M], -1 padding; a larger group takes several rows): a shared block's scores are
    computed once for all of a row's queries, as one tile, and no member reads it again. Level 2: each
    slot's own blocks from the first its group does not wholly share (``own``: a :class:`FlexPlan`
    whose rows list only those). The two softmax parts are merged by their log-sum-exps. ``row``/``col``:
    where slot ``s`` sits in level 1 (row -1: nothing shared, level 2 alone); ``index``/``count``: level
    1's block tables (row ``h * R + r``: K/V head ``h`` of row ``r``); ``mask``: its block mask (CUDA)."""

    members: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    index: torch.Tensor
    count: torch.Tensor
    own: FlexPlan
    whole: torch.Tensor  # [S] whole blocks each slot's group shares (its level 2 starts there)
    length: int
    mask: Any = None
    split: int = 0
    options: tuple[tuple[str, int], ...] = ()


def cascade_flex_plan(
    pos: torch.Tensor, kv_heads: int, length: int, groups: CascadeGroups, per_row: int, split: int = 0,
    options: tuple[tuple[str, int], ...] = (),
) -> CascadeFlexPlan:  # fmt: skip
    """:class:`CascadeFlexPlan` for slots at positions ``pos`` sharing prefixes as ``groups`` says (from
    :meth:`CascadeGroups.fill`: groups contiguous in ``perm``, ``leader``/``prefix`` per slot), ``per_row``
    members a level-1 row. Built on the device from the groups' tensors (static shapes, no host read:
    the step stays capturable)."""
    if length % FLEX_BLOCK:
        raise ValueError(f"decode_flex needs a cache length that is a multiple of {FLEX_BLOCK}, not {length}")
    if per_row < 1:
        raise ValueError("per_row must be >= 1")
    if groups.sources is not None:
        raise ValueError("the cascade layout reads groups (CascadeGroups.fill), not block sharing")
    slots, blocks, device = pos.shape[0], length // FLEX_BLOCK, pos.device
    order, leader = groups.perm, groups.leader
    whole = (groups.prefix.long() // FLEX_BLOCK).clamp(max=blocks)  # [S] whole blocks each slot shares
    lead, shared = leader[order], whole[order]  # in perm order: groups contiguous
    at = torch.arange(slots, device=device)
    first = torch.ones(slots, dtype=torch.bool, device=device)
    first[1:] = lead[1:] != lead[:-1]
    start = torch.where(first, at, 0).cummax(0).values  # index of the group's first member (perm order)
    rank, group = at - start, first.long().cumsum(0) - 1
    size = torch.zeros(slots, dtype=torch.long, device=device).scatter_add_(0, group, torch.ones_like(group))
    has = torch.zeros(slots, dtype=torch.long, device=device).scatter_reduce_(
        0, group, (shared > 0).long(), "amax", include_self=False
    )  # fmt: skip
    rows_of = has * ((size + per_row - 1) // per_row)
    base = rows_of.cumsum(0) - rows_of  # the group's first level-1 row
    row_p = torch.where(shared > 0, base[group] + rank // per_row, -1)
    col_p = rank % per_row
    rows = slots  # an upper bound (rows_of sums to at most ``slots``); unused rows read nothing
    cells = torch.full((rows * per_row + 1,), -1, dtype=torch.long, device=device)  # + a cell to park in
    cells.scatter_(0, torch.where(row_p >= 0, row_p * per_row + col_p, rows * per_row), order)
    members = cells[:-1].view(rows, per_row)
    row = torch.empty_like(row_p).scatter_(0, order, row_p)
    col = torch.empty_like(col_p).scatter_(0, order, col_p)
    # level 1: row r lists blocks 0..w-1 of its group's leader (w: the group's whole shared blocks)
    valid = members >= 0
    head_slot = torch.where(valid, members, 0)[:, 0]
    row_blocks = torch.where(valid[:, 0], whole[head_slot], 0)  # [R]
    row_leader = leader[head_slot]
    block = torch.arange(blocks, device=device)
    head = torch.arange(kv_heads, device=device)[:, None, None]
    index = (
        ((row_leader[None, :, None] * kv_heads + head) * blocks + block)
        .to(torch.int32)
        .view(kv_heads * rows, blocks)
    )
    count = row_blocks.repeat(kv_heads).to(torch.int32)
    # level 2: each slot its own blocks from its first not wholly shared one, in slot order
    own_start = whole  # [S]
    own_block = (own_start[:, None] + block[None, :]).clamp(max=blocks - 1)
    own_index = ((at[None, :, None] * kv_heads + head) * blocks + own_block[None]).to(torch.int32)
    own_index = own_index.view(kv_heads * slots, blocks)
    own = FlexPlan(at, at, own_index, pos.repeat(kv_heads), length, split=split, options=options)
    plan = CascadeFlexPlan(members, row, col, index, count, own, whole, length, split=split, options=options)
    if pos.is_cuda:
        from torch.nn.attention.flex_attention import BlockMask

        def every(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return kv >= 0  # a level-1 block lies wholly before every member's position

        z = kv_heads * rows
        plan.mask = BlockMask.from_kv_blocks(
            count.view(z, 1, 1), index.view(z, 1, 1, blocks), BLOCK_SIZE=(FLEX_BLOCK, FLEX_BLOCK),
            mask_mod=every, seq_lengths=(per_row, slots * kv_heads * length), compute_q_blocks=False,
        )  # fmt: skip
        own_count = (
            ((pos + FLEX_BLOCK) // FLEX_BLOCK - own_start).clamp(min=1).repeat(kv_heads).to(torch.int32)
        )
        row_pos = own.row_pos

        def own_positions(
            b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor
        ) -> torch.Tensor:
            return kv % length <= row_pos[b]

        own.mask = BlockMask.from_kv_blocks(
            own_count.view(kv_heads * slots, 1, 1), own_index.view(kv_heads * slots, 1, 1, blocks),
            BLOCK_SIZE=(FLEX_BLOCK, FLEX_BLOCK), mask_mod=own_positions,
            seq_lengths=(1, slots * kv_heads * length), compute_q_blocks=False,
        )  # fmt: skip
    return plan


def _gathered_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor, seen: torch.Tensor,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The CPU reference of a flex call over block tables: each row's listed blocks gathered, queries
    [Z, G, M, D] attending where ``seen`` [Z, M, width] says; (output, natural-log LSE [Z, G, M]; -inf
    and 0 output where a query sees nothing)."""
    z, fold, m, dim = q.shape
    width = index.shape[1] * FLEX_BLOCK
    k, v = (c.reshape(-1, FLEX_BLOCK, dim)[index.long()].view(z, width, dim) for c in (keys, values))
    scale = dim**-0.5 if scale is None else scale
    scores = torch.einsum("zgmd,zwd->zgmw", q.float(), k.float()) * scale
    scores = scores.masked_fill(~seen[:, None], float("-inf"))
    lse = torch.logsumexp(scores, -1)
    weights = torch.where(seen[:, None], (scores - lse[..., None].clamp(min=-1e30)).exp(), 0.0)
    out = torch.einsum("zgmw,zwd->zgmd", weights, v.float()).to(q.dtype)
    return out, lse


def _decode_flex_cascade(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float | None, plan: CascadeFlexPlan
) -> torch.Tensor:  # fmt: skip
    """:func:`decode_flex` on a :class:`CascadeFlexPlan`: level 1 (the shared blocks, a row's members as
    one tile), level 2 (each slot's own blocks), merged by their log-sum-exps."""
    slots, kv_heads, length, dim = k_cache.shape
    heads = query.shape[1]
    fold, (rows, per_row), blocks = heads // kv_heads, plan.members.shape, length // FLEX_BLOCK
    keys, values = (cache.view(1, 1, slots * kv_heads * length, dim) for cache in (k_cache, v_cache))
    q1 = query.view(slots, kv_heads, fold, dim)[plan.members.clamp(min=0)]  # [R, M, Hkv, G, D]
    q1 = q1.permute(2, 0, 3, 1, 4).reshape(kv_heads * rows, fold, per_row, dim)
    q2 = query.view(slots, kv_heads, fold, dim).transpose(0, 1).reshape(kv_heads * slots, fold, 1, dim)
    own = plan.own
    if query.is_cuda:
        out1, lse1 = _flex(q1, keys, values, plan.mask, scale, plan.split, plan.options, lse=True)
        out2, lse2 = _flex(q2, keys, values, own.mask, scale, own.split, own.options, lse=True)
    else:
        cols = torch.arange(blocks * FLEX_BLOCK, device=query.device)
        seen1 = (cols[None, :] < plan.count[:, None] * FLEX_BLOCK)[:, None, :].expand(-1, per_row, -1)
        out1, lse1 = _gathered_attention(q1, keys, values, plan.index, seen1, scale)
        start = plan.whole.repeat(kv_heads)[:, None]  # level 2 lists a row's blocks from here on
        listed = cols[None, :] // FLEX_BLOCK < own.row_pos[:, None] // FLEX_BLOCK + 1 - start  # then repeats
        seen2 = listed & (start * FLEX_BLOCK + cols[None, :] <= own.row_pos[:, None])
        out2, lse2 = _gathered_attention(q2, keys, values, own.index, seen2[:, None, :], scale)
    # level 1 back to slots: [Hkv, R, G, M, .] at (row[s], col[s]); no row: nothing shared (-inf)
    r, c, none = plan.row.clamp(min=0), plan.col, plan.row < 0
    o1 = out1.view(kv_heads, rows, fold, per_row, dim).permute(1, 3, 0, 2, 4)[r, c]  # [S, Hkv, G, D]
    l1 = lse1.view(kv_heads, rows, fold, per_row).permute(1, 3, 0, 2)[r, c].float()
    # a slot without a row reads level 2 alone; its gathered row may be one that read nothing, whose
    # split-merged output can be NaN on the GPU (0 x NaN would poison the merge)
    l1 = l1.masked_fill(none[:, None, None], float("-inf"))
    o1 = o1.masked_fill(none[:, None, None, None], 0)
    o2 = out2.view(kv_heads, slots, fold, dim).transpose(0, 1)
    l2 = lse2.view(kv_heads, slots, fold).transpose(0, 1).float()
    top = torch.maximum(l1, l2)
    w1, w2 = (l1 - top).exp(), (l2 - top).exp()
    merged = (o1.float() * w1[..., None] + o2.float() * w2[..., None]) / (w1 + w2)[..., None]
    return merged.to(query.dtype).reshape(slots, heads, dim)


def flex_plan(
    pos: torch.Tensor, kv_heads: int, length: int, groups: CascadeGroups | None = None, split: int = 0,
    full_blocks: bool | None = None, options: tuple[tuple[str, int], ...] = (),
) -> FlexPlan:  # fmt: skip
    """:class:`FlexPlan` for slots at positions ``pos`` over a cache of ``length`` positions per slot
    (a multiple of :data:`FLEX_BLOCK`). With ``groups`` a member's whole blocks of its group's shared
    prefix come from the group's first member, and the rows are ordered group by group. ``split``:
    the compiled kernel's ``SPLIT_KV`` (CTAs per row; 0: PyTorch's default, ``2 * SMs // rows`` or 1).
    ``full_blocks`` (default: when not splitting): the blocks before a row's last are listed as full
    (no mask evaluated); the kernel then tiles splits over the whole sequence, so they go with ``split``
    of 1 only. ``options``: the kernel's other Triton options (:func:`_flex`)."""
    if length % FLEX_BLOCK:  # the compiled kernel reads whole blocks: past the cache otherwise
        raise ValueError(f"decode_flex needs a cache length that is a multiple of {FLEX_BLOCK}, not {length}")
    slots, blocks, device = pos.shape[0], length // FLEX_BLOCK, pos.device
    block = torch.arange(blocks, device=device)
    if groups is None:
        order = inverse = torch.arange(slots, device=device)
        source = order[:, None].expand(slots, blocks)
    elif groups.sources is not None:  # block sharing (:meth:`CascadeGroups.fill_blocks`)
        order, inverse = groups.perm, groups.inverse
        source = groups.sources[order]
    else:
        order, inverse = groups.perm, groups.inverse
        leader, shared = groups.leader, groups.prefix.long() // FLEX_BLOCK
        source = torch.where(
            block[None, :] < shared[order, None], leader[order, None], order[:, None]
        )  # [S, n]
    head = torch.arange(kv_heads, device=device)[:, None, None]
    rows = kv_heads * slots
    index = ((source[None] * kv_heads + head) * blocks + block).to(torch.int32).view(rows, blocks)
    plan = FlexPlan(order, inverse, index, pos[order].repeat(kv_heads), length, split=split, options=options)
    if pos.is_cuda:
        plan.mask = _flex_mask(plan, split <= 1 if full_blocks is None else full_blocks)
    return plan


def _flex_mask(plan: FlexPlan, full_blocks: bool) -> Any:
    """The block mask of ``plan``: a row reads the blocks its table names up to the one holding its
    position, masked within that one (and, without ``full_blocks``, the mask evaluated on all)."""
    from torch.nn.attention.flex_attention import BlockMask

    index, row_pos, length = plan.index, plan.row_pos, plan.length
    rows, blocks = index.shape

    def own_positions(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return kv % length <= row_pos[b]  # a block never straddles two slots

    count = ((row_pos + FLEX_BLOCK) // FLEX_BLOCK).to(torch.int32)  # ceil((pos + 1) / B)
    shape = dict(BLOCK_SIZE=(FLEX_BLOCK, FLEX_BLOCK), mask_mod=own_positions, seq_lengths=(1, rows * length))
    if not full_blocks:
        return BlockMask.from_kv_blocks(
            count.view(rows, 1, 1), index.view(rows, 1, 1, blocks), compute_q_blocks=False, **shape
        )  # fmt: skip
    full = ((row_pos + 1) // FLEX_BLOCK).to(torch.int32)  # blocks wholly at or before the position
    # the block holding the position, first of a table shaped like the full blocks' (the kernel offsets
    # both tables by the same row stride)
    partial = torch.cat([index.gather(1, full.long().clamp(max=blocks - 1)[:, None]), index[:, 1:]], 1)
    return BlockMask.from_kv_blocks(
        (count - full).view(rows, 1, 1), partial.view(rows, 1, 1, blocks), full.view(rows, 1, 1),
        index.view(rows, 1, 1, blocks), compute_q_blocks=False, **shape,
    )  # fmt: skip


def decode_flex(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, scale: float | None,
    groups: CascadeGroups | None = None, plan: FlexPlan | PackedFlexPlan | CascadeFlexPlan | None = None,
) -> torch.Tensor:  # fmt: skip
    """:func:`decode_varlen`'s attention by PyTorch's FlexAttention: slot ``s`` reads its first
    ``pos[s] + 1`` positions, in :data:`FLEX_BLOCK` blocks (the block mask, built on the device from
    ``pos``: no host read, so the step stays capturable) and masked within the last one. On CUDA it
    is compiled, and its decoding kernel splits the work over the GPU's SMs and packs the query heads
    that share a K/V head into one tile -- the flash kernel's varlen form, which :func:`decode_varlen`
    calls, walks each slot and head on one SM (1.0 ms per layer for 256 BFCL slots on an H200,
    ~1.3 TB/s, against 0.62 ms). Off CUDA a reference runs (each row's blocks gathered; tests).

    Each (slot, K/V head) pair is one row of the kernel's batch over the whole cache seen as one
    sequence, so a row's block table may name any slot's blocks. With ``groups`` (slots whose caches
    hold the same first tokens, :class:`CascadeGroups`) a member reads the whole blocks of the shared
    prefix from its group's first member's copy, and the rows are ordered head by head, each group's
    members side by side: the members walk the same blocks at about the same time, so the prefix can
    come from the L2 cache rather than HBM for all but one (what :func:`decode_cascade` does with two
    kernel calls and a merge). ``plan``: :func:`flex_plan`'s, built once per step for all layers (else
    built here from ``pos`` and ``groups``). query [S, Hq, D], k_cache/v_cache [S, Hkv, L, D] (the cache
    itself, contiguous, ``L`` a multiple of :data:`FLEX_BLOCK`: the engine allocates it so); returns
    [S, Hq, D]."""
    slots, kv_heads, length, dim = k_cache.shape
    plan = plan or flex_plan(pos, kv_heads, length, groups)
    if plan.length != length:
        raise ValueError(f"a flex plan for {plan.length} cache positions used on {length}")
    if isinstance(plan, PackedFlexPlan):
        return _decode_flex_packed(query, k_cache, v_cache, scale, plan)
    if isinstance(plan, CascadeFlexPlan):
        return _decode_flex_cascade(query, k_cache, v_cache, scale, plan)
    heads = query.shape[1]
    fold, rows, blocks = heads // kv_heads, kv_heads * slots, length // FLEX_BLOCK
    q = query.view(slots, kv_heads, fold, dim)[plan.order].transpose(0, 1).reshape(rows, fold, 1, dim)
    if query.is_cuda:
        keys, values = (cache.view(1, 1, rows * length, dim) for cache in (k_cache, v_cache))
        out = _flex(q, keys, values, plan.mask, scale, plan.split, plan.options)
    else:  # the reference: each row's blocks gathered (the unfused flex form would score every row's
        # query against the whole cache), then attention up to the row's position
        whole = [
            c.reshape(rows * blocks, FLEX_BLOCK, dim)[plan.index].view(rows, 1, length, dim)
            for c in (k_cache, v_cache)
        ]
        seen = torch.arange(length, device=query.device)[None, :] <= plan.row_pos[:, None]
        out = F.scaled_dot_product_attention(
            q, *whole, attn_mask=seen[:, None, None, :], scale=scale, enable_gqa=True
        )  # fmt: skip
    out = out.view(kv_heads, slots, fold, dim).transpose(0, 1)
    return out[plan.inverse].reshape(slots, heads, dim)


def fold_gqa(query: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """Decode queries [n, Hq, D] as [n*G, Hkv, D]: the ``G`` query heads that share a K/V head become
    ``G`` queries of that head (row ``s*G + g``, head ``j`` is query head ``j*G + g`` of slot ``s``).
    The flash kernel then reads each K/V head once per slot rather than once per query head. For one
    query per sequence the kernel does this itself (on an H200: 1.03 ms per layer-step either way,
    BFCL multi-turn); :func:`decode_cascade`'s stacked group queries need it."""
    n, heads, dim = query.shape
    groups = heads // kv_heads
    return query.view(n, kv_heads, groups, dim).transpose(1, 2).reshape(n * groups, kv_heads, dim)


def unfold_gqa(out: torch.Tensor, heads: int) -> torch.Tensor:
    """:func:`fold_gqa`'s inverse: [n*G, Hkv, D] back to [n, Hq, D]."""
    rows, kv_heads, dim = out.shape
    groups = heads // kv_heads
    return out.view(rows // groups, groups, kv_heads, dim).transpose(1, 2).reshape(rows // groups, heads, dim)


def unfold_lse(lse: torch.Tensor, heads: int) -> torch.Tensor:
    """The kernel's log-sum-exps of folded queries, [Hkv, n*G], as [Hq, n]."""
    kv_heads, rows = lse.shape
    groups = heads // kv_heads
    return lse.view(kv_heads, rows // groups, groups).transpose(1, 2).reshape(heads, rows // groups)


def cache_rows(cache: torch.Tensor) -> torch.Tensor:
    """A [slots, Hkv, L, D] cache as the variable-length kernel's [rows, Hkv, D] (no copy): rows of
    ``D`` with a row stride of ``D`` and a head stride of ``L*D``; slot ``s`` starts at row ``s*Hkv*L``."""
    slots, kv_heads, length, dim = cache.shape
    rows = (slots - 1) * kv_heads * length + length  # the last row any slot can reach
    return cache.as_strided((rows, kv_heads, dim), (dim, length * dim, 1), cache.storage_offset())


def extend_varlen(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, used: torch.Tensor,
    attend: int, scale: float | None,
) -> torch.Tensor:  # fmt: skip
    """:class:`ExtendMode` attention read from the cache in place: row ``r``'s ``width`` queries (its new
    tokens, left-padded) attend positions ``0..`` of slot ``slots[r]`` causally, the last query seeing
    ``used[r]`` positions (its new K/V already written). query [n, Hq, width, D]; returns
    [n, width, Hq, D]. The flash kernel aligns the causal mask to the bottom right, so the real
    tokens (the last columns) see exactly their prefix; a padding column sees fewer positions, or
    none (zeros), and is discarded by the caller. No K/V gather, no repeated GQA heads, no mask.
    ``slots`` must be ascending (the kernel reads each row's start from ``cu_seq_k``)."""
    n, heads, width, dim = query.shape
    q = query.transpose(1, 2).reshape(n * width, heads, dim)
    cu_q = torch.arange(n + 1, dtype=torch.int32, device=query.device) * width
    return varlen_rows(q, k_cache, v_cache, slots, cu_q, width, used, attend, scale).view(
        n, width, heads, dim
    )


def varlen_rows(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, cu_q: torch.Tensor,
    max_q: int, used: torch.Tensor, attend: int, scale: float | None,
) -> torch.Tensor:  # fmt: skip
    """Rows of queries attending their slots' caches in place: row ``r``'s queries (``query[cu_q[r]:
    cu_q[r+1]]``, [total, Hq, D]) are the last of the ``used[r]`` positions slot ``slots[r]`` holds and
    attend them causally (bottom-right aligned). ``slots`` ascending; returns [total, Hq, D]."""
    dim = query.shape[-1]
    kv_heads, length = k_cache.shape[1], k_cache.shape[2]
    starts = slots.to(torch.int32) * (kv_heads * length)
    cu_k = torch.cat([starts, starts[-1:] + length])
    cu_q, used = cu_q.to(torch.int32), used.to(torch.int32)
    scale = dim**-0.5 if scale is None else scale
    if not query.is_cuda:
        return varlen_reference(query, cache_rows(k_cache), cache_rows(v_cache), cu_k, used, scale, cu_q)
    return torch.ops.aten._flash_attention_forward(
        query, cache_rows(k_cache), cache_rows(v_cache), cu_q, cu_k, max_q, attend, 0.0, True, False,
        scale=scale, seqused_k=used,
    )[0]  # fmt: skip


def decode_cascade(
    query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
    groups: CascadeGroups, attend: int, scale: float | None,
) -> torch.Tensor:  # fmt: skip
    """:func:`decode_varlen`'s attention, reading a prefix that several slots share once for all of
    them (cascade attention): the group's queries stacked against one member's copy of the prefix
    (``groups``), then each slot against the rest of its own cache (``prefix[s]..pos[s]``), the two
    softmax parts merged by their log-sum-exps. query [S, Hq, D]; returns [S, Hq, D]."""
    slots, kv_heads, length, dim = k_cache.shape
    scale = dim**-0.5 if scale is None else scale
    keys, values = cache_rows(k_cache), cache_rows(v_cache)
    cu_s = torch.arange(slots + 1, dtype=torch.int32, device=query.device)
    starts = cu_s * (kv_heads * length) + torch.cat([groups.prefix, groups.prefix[-1:]])
    rest = (pos + 1).to(torch.int32) - groups.prefix
    heads, fold = query.shape[1], query.shape[1] // kv_heads  # fold: query heads per K/V head
    stacked, own_q = fold_gqa(query[groups.perm], kv_heads), fold_gqa(query, kv_heads)
    if query.is_cuda:
        flash = torch.ops.aten._flash_attention_forward
        shared, lse_shared = flash(
            stacked, keys, values, groups.cu_q * fold, groups.cu_k, slots * fold, attend, 0.0, False, False,
            scale=scale, seqused_k=groups.used,
        )[:2]  # fmt: skip
        own, lse_own = flash(
            own_q, keys, values, cu_s * fold, starts, fold, attend, 0.0, False, False, scale=scale,
            seqused_k=rest,
        )[:2]  # fmt: skip
    else:
        lse: list[torch.Tensor] = []
        shared = varlen_reference(
            stacked, keys, values, groups.cu_k, groups.used, scale, groups.cu_q * fold, False, lse
        )
        own = varlen_reference(own_q, keys, values, starts, rest, scale, cu_s * fold, False, lse)
        lse_shared, lse_own = lse
    shared, own = unfold_gqa(shared, heads), unfold_gqa(own, heads)
    lse_shared, lse_own = unfold_lse(lse_shared, heads), unfold_lse(lse_own, heads)
    shared, lse_shared = shared[groups.inverse], lse_shared[:, groups.inverse]
    top = torch.maximum(lse_shared, lse_own)
    w_shared, w_own = (lse_shared - top).exp(), (lse_own - top).exp()  # [Hq, S]
    merged = (shared.float() * w_shared.T[..., None] + own.float() * w_own.T[..., None]) / (
        w_shared + w_own
    ).T[..., None]
    return torch.where((groups.prefix > 0)[:, None, None], merged.to(own.dtype), own)


def varlen_reference(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, cu_k: torch.Tensor, used: torch.Tensor,
    scale: float, cu_q: torch.Tensor | None = None, causal: bool = True, lse: list | None = None,
) -> torch.Tensor:  # fmt: skip
    """What the variable-length kernel computes, one sequence at a time: sequence ``b``'s queries (rows
    ``cu_q[b] .. cu_q[b+1] - 1`` of ``query`` [total_q, Hq, D]; without ``cu_q`` one query each) attend
    rows ``cu_k[b] .. cu_k[b] + used[b] - 1`` of ``keys``/``values`` [rows, Hkv, D] (grouped heads
    share), causally aligned to the bottom right: the last query sees all ``used[b]`` rows, the one
    before one row fewer, and a query that sees none gets zeros (``causal=False``: every query sees
    all of them). ``lse``: a list that receives the log-sum-exp of the scores, [Hq, total_q] fp32, as
    the flash kernel returns it."""
    groups = query.shape[1] // keys.shape[1]
    if cu_q is None:
        cu_q = torch.arange(len(used) + 1)
    out, sums = [], []
    bounds = zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), cu_k[:-1].tolist(), used.tolist(), strict=True)
    for q_begin, q_end, begin, n in bounds:
        m = q_end - q_begin
        k = keys[begin : begin + n].transpose(0, 1).repeat_interleave(groups, 0)  # [Hq, n, D]
        v = values[begin : begin + n].transpose(0, 1).repeat_interleave(groups, 0)
        q = query[q_begin:q_end].transpose(0, 1).float()  # [Hq, m, D]
        scores = q @ k.transpose(1, 2).float() * scale
        visible = torch.arange(n)[None, :] <= torch.arange(m)[:, None] + (n - m)  # [m, n]
        if not causal:
            visible = torch.ones_like(visible)
        scores = scores.masked_fill(~visible, float("-inf"))
        sums.append(torch.logsumexp(scores, -1))  # [Hq, m]
        probs = scores.softmax(-1).nan_to_num(0.0)
        out.append((probs.to(v.dtype) @ v).transpose(0, 1))  # [m, Hq, D]
    if lse is not None:
        lse.append(torch.cat(sums, 1))
    return torch.cat(out)


def _extend(
    state: DecodeState, layer: int, mode: ExtendMode, query: torch.Tensor, key: torch.Tensor,
    value: torch.Tensor, attention_mask: torch.Tensor, scaling: float | None, groups: int,
) -> tuple[torch.Tensor, None]:  # fmt: skip
    """:class:`ExtendMode` attention: write the new K/V after each slot's cached tokens, then attend
    over the slot's cache. A row's padding columns land after its real tokens (positions past what
    the slot holds, clamped to the cache), so they never overwrite a cached or a new token."""
    width = mode.width
    cols = torch.arange(width, device=key.device)[None, :]
    src = (cols + mode.offsets[:, None]).clamp(max=width - 1)  # real tokens first, padding after
    dst = (mode.starts[:, None] + cols).clamp(max=state.max_len - 1)
    src = src[:, None, :, None].expand(-1, key.shape[1], -1, key.shape[3])
    rows = mode.slots[:, None]
    state.k[layer][rows, :, dst] = key.gather(2, src).transpose(1, 2)
    state.v[layer][rows, :, dst] = value.gather(2, src).transpose(1, 2)
    if mode.kernel == "varlen":
        out = extend_varlen(
            query, state.k[layer], state.v[layer], mode.slots, mode.used, mode.attend, scaling
        )
        return out, None
    keys = state.k[layer][mode.slots, :, : mode.attend]
    values = state.v[layer][mode.slots, :, : mode.attend]
    if groups > 1:
        keys, values = keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1)
    out = F.scaled_dot_product_attention(query, keys, values, attn_mask=attention_mask, scale=scaling)
    return out.transpose(1, 2), None


@contextmanager
def active_state(state: DecodeState) -> Iterator[None]:
    """:func:`_attention` writes into and reads ``state`` for the block (a range of the cache's slots)."""
    _ACTIVE.append(state)
    try:
        yield
    finally:
        _ACTIVE.pop()


@contextmanager
def engine_attention(model: Any, state: DecodeState) -> Iterator[None]:
    """Route the model's attention through :func:`_attention` (writing into ``state``) for the block."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _attention)
    config = model.config
    previous = config._attn_implementation
    _ACTIVE.append(state)
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _ACTIVE.pop()


#: the engine's attention as the compiled decoder layers call it (:func:`compiled_layers`): the same
#: function behind a graph break -- its Python reads the active state and the step's mode, and the flex
#: kernel it calls is compiled on its own
COMPILED_ATTENTION_NAME = "forge_engine_compiled"
#: compiled decoder-layer variants a process may hold (dynamo keeps one per layer instance, the
#: ``self`` it guards on, and per decode shape): past torch's default of 8 it would run layers eagerly
LAYER_COMPILES = 256
#: the ``torch.compile`` backend of the compiled decoder layers (tests on CPU may take ``aot_eager``)
LAYER_BACKEND = "inductor"


def layer_options() -> dict[str, Any] | None:
    """Inductor's options for the compiled decoder layers: ``emulate_precision_casts``, so a fused
    kernel rounds where eager rounds (each bf16 op's result) rather than keeping fp32 between the ops
    it fuses -- the compiled step then yields eager's tokens (bf16 on the CPU: 8 of 8 sequences equal
    with it, 5 of 8 without), and a score does not move with this speed option."""
    return {"emulate_precision_casts": True} if LAYER_BACKEND == "inductor" else None


def decoder_layers(model: Any) -> list[Any]:
    """The decoder layers of a causal LM of :data:`engine.SUPPORTED_MODEL_TYPES` (``model.model.layers``)."""
    return list(getattr(model, "model", model).layers)


@contextmanager
def compiled_layers(model: Any, compiled: list[Callable[..., Any]]) -> Iterator[None]:
    """Run ``model``'s decoder layers through ``compiled`` (one ``torch.compile``-d forward per layer,
    made by the caller once) for the block. Inductor fuses each layer's small ops -- the RMSNorms, the
    rotary embedding, SwiGLU's activation and product, the residual adds -- around the matmuls; the
    attention call is a graph break (:data:`COMPILED_ATTENTION_NAME`), so a layer runs as two compiled
    regions with the engine's attention between them."""
    import torch._dynamo
    from transformers import AttentionInterface

    AttentionInterface.register(COMPILED_ATTENTION_NAME, _compiled_attention)
    layers = decoder_layers(model)
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = COMPILED_ATTENTION_NAME
    for layer, forward in zip(layers, compiled, strict=True):
        layer.forward = forward
    try:
        with torch._dynamo.config.patch(recompile_limit=LAYER_COMPILES):
            yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
        config._attn_implementation = previous


@torch.compiler.disable
def _compiled_attention(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    return _attention(*args, **kwargs)


def warm_up(step: Callable[[], None], device: torch.device) -> None:
    """Run ``step`` once on a side stream (a real step: cuBLAS and friends allocate their workspaces)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream(device).wait_stream(side)


def capture(step: Callable[[], None], device: torch.device) -> torch.cuda.CUDAGraph:
    """A CUDA graph of ``step`` (capturing does not run it). All its effects go to preallocated tensors."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph
