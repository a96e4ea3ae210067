"""Which slot a keyed request goes to, and how much of its prompt is already in the engine's KV cache.

Why: a multi-turn conversation comes back every round with its whole prompt re-rendered (function
docs, earlier turns, tool results), and conversations with the same tools share a long system
prefix. The engine keeps each slot's K/V after a request ends; this table remembers, per slot, the
token ids whose K/V the slot holds, so the next request prefills only what is new:

* **own prefix** -- a key is pinned to the slot it last used; the new prompt reuses the longest
  common *token* prefix with what the slot holds (not "the old prompt plus its reply": the chat
  template may render the reply differently from the generated ids, and the token LCP stays exact);
* **shared prefix** -- otherwise the longest prefix any other slot holds is copied on the device
  into the target slot, when at least ``share_min_tokens`` tokens match (a copy is much cheaper than
  recomputing them);
* **eviction** -- a new key takes a free slot: one that holds its prefix already, else one never
  used, else the least recently used one whose key is not waiting in the same call. An evicted key
  just prefills fully next time.

Lookups go through chain hashes of :data:`BLOCK`-token blocks (the hash of block ``d`` covers blocks
``0..d``) and are then confirmed token by token, so a hash collision costs time, never exactness.
Pure bookkeeping: no tensors here (:mod:`evaluation.generation.engine` moves the K/V).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

#: Tokens per hashed block: the granularity at which shared prefixes are found (then refined to the token).
BLOCK = 16


def common_prefix(a: Sequence[int], b: Sequence[int], step: int = 64) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (slices compared ``step`` at a time, in C)."""
    n = min(len(a), len(b))
    i = 0
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def block_hashes(
    ids: Sequence[int], block: int = BLOCK, known: Sequence[int] = (), known_hashes: Sequence[int] = (),
    chain: int = 0,
) -> list[int]:  # fmt: skip
    """Chain hash of every whole ``block``-token block of ``ids``: entry ``d`` stands for ``ids[:(d+1)*block]``.
    ``known_hashes`` (those of ``known``) are reused over the whole blocks ``ids`` shares with ``known``.
    ``chain``: the hash of the blocks before ``ids`` (``ids`` continues a hashed sequence)."""
    shared = min(common_prefix(known, ids) // block, len(known_hashes)) if known_hashes else 0
    out = list(known_hashes[:shared])
    h = out[-1] if out else chain
    for i in range(shared * block, len(ids) - block + 1, block):
        h = hash((h, tuple(ids[i : i + block])))
        out.append(h)
    return out


def shared_tokens(hashes: Sequence[int], others: Collection[int]) -> int:
    """Tokens (whole blocks) of a prompt that another prompt shares, ``others`` holding the other
    prompts' chain hashes. A chain hash at depth ``d`` in ``others`` means a prompt holding the same first
    ``d + 1`` blocks, whose shallower hashes are in ``others`` too: the shared depth is bisected (a BFCL
    first prompt shares ~400 blocks with another of its admission group: ~9 lookups instead of ~400)."""
    lo, hi = 0, len(hashes)  # hashes[:lo] are all in others; the shared depth is in lo..hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if hashes[mid - 1] in others:
            lo = mid
        else:
            hi = mid - 1
    return lo * BLOCK


@dataclass(frozen=True)
class Plan:
    """Where one request goes. ``slot`` holds ``prompt[:reused]`` already; ``prompt[reused:start]`` is
    copied from slot ``source`` (``None``: no copy); the prefill computes ``prompt[start:]``.
    ``evicts``: the key that loses ``slot`` (``None`` when the slot was free or the key's own)."""

    slot: int
    reused: int
    start: int
    source: int | None = None
    evicts: Hashable | None = None


class SlotTable:
    """Per slot: the token ids whose K/V it holds, its key, when it was last used (see the module docstring)."""

    def __init__(self, slots: int, share_min_tokens: int) -> None:
        self.ids: list[list[int]] = [[] for _ in range(slots)]
        self.keys: list[Hashable | None] = [None] * slots
        self.slot_of: dict[Hashable, int] = {}
        self.used = [0] * slots  # tick of the last request, for LRU
        self.share_min_tokens = share_min_tokens
        self._hashes: list[list[int]] = [[] for _ in range(slots)]
        self._index: dict[int, set[int]] = {}  # chain hash -> slots holding that prefix
        self._tick = 0
        # slot -> {id(prompt): (the prompt, the tokens the slot holds alike with it)}: an admission asks
        # the same questions several times (the engine's order, the hashes, the plan, the store), of a
        # prompt's own slot and of a copy source; dropped when the slot's ids change
        self._lcp: dict[int, dict[int, tuple[Sequence[int], int]]] = {}

    # ----------------------------------------------------------------------------- lookups
    def common(self, slot: int, prompt: Sequence[int]) -> int:
        """``common_prefix(self.ids[slot], prompt)``, remembered for ``prompt`` (the same object) until
        the slot's ids change."""
        memo = self._lcp.setdefault(slot, {})
        known = memo.get(id(prompt))
        if known is not None and known[0] is prompt:
            return known[1]
        n = common_prefix(self.ids[slot], prompt)
        memo[id(prompt)] = (prompt, n)  # the prompt held, so its id is not reused meanwhile
        return n

    def plan(
        self,
        prompt: Sequence[int],
        hashes: Sequence[int],
        key: Hashable,
        free: Collection[int],
        busy: Collection[int],
        waiting: Collection[Hashable],
    ) -> Plan:
        """Where ``prompt`` (its :func:`block_hashes` in ``hashes``) goes. ``free``: slots it may take
        (not decoding, not taken in this admission); ``busy``: slots whose cache is about to be
        rewritten (never a copy source); ``waiting``: keys of the same call not admitted yet (their
        slots are evicted last). The prefill always computes at least the last prompt token."""
        limit = len(prompt) - 1  # the last token's logits are needed: it is always recomputed
        if key in self.slot_of:
            slot, evicts = self.slot_of[key], None
            if slot not in free:
                raise RuntimeError(f"slot {slot} of key {key!r} is not free")
        else:
            slot, evicts = self._victim(prompt, hashes, free, waiting)
        reused = min(self.common(slot, prompt), limit)
        source = self._deepest(hashes, lambda s: s != slot and s not in busy)
        if source is not None:
            # the source holds the prompt's first k whole blocks alike (their chain hashes), not block k:
            # fewer than (k + 1) * BLOCK tokens in common. A prompt that continues its own slot mostly
            # cannot gain from a copy, and then its tokens are not compared with the source's at all.
            k = common_prefix(self._hashes[source], hashes)
            bound = min((k + 1) * BLOCK - 1, len(self.ids[source]), limit)
            if bound - reused >= self.share_min_tokens:
                shared = min(self.common(source, prompt), limit)
                if shared - reused >= self.share_min_tokens:
                    return Plan(slot, reused, shared, source, evicts)
        return Plan(slot, reused, reused, None, evicts)

    def _victim(
        self,
        prompt: Sequence[int],
        hashes: Sequence[int],
        free: Collection[int],
        waiting: Collection[Hashable],
    ) -> tuple[int, Hashable | None]:
        if not free:
            raise RuntimeError("no free slot")
        spare = [s for s in free if self.keys[s] is None or self.keys[s] not in waiting] or list(free)
        spare_set = set(spare)
        holder = self._deepest(hashes, lambda s: s in spare_set)  # already holds the longest prefix
        if holder is not None and self.common(holder, prompt) >= self.share_min_tokens:
            slot = holder
        else:  # never used, else least recently used
            slot = min(spare, key=lambda s: (self.keys[s] is not None or bool(self.ids[s]), self.used[s], s))
        return slot, self.keys[slot]

    def _deepest(self, hashes: Sequence[int], accept: Callable[[int], bool]) -> int | None:
        """A slot satisfying ``accept`` that shares the most whole blocks with the prompt (``None``: none
        shares one). The holders of a deeper prefix are a subset of a shallower one's, so whether an
        accepted holder exists only turns false with depth (a depth nobody holds has none): the deepest
        such depth is bisected over all of the prompt's blocks (a prompt of ~300 blocks, each held by
        ~200 slots, asks ~9 depths instead of up to 300, and walks no run of held depths first)."""
        index = self._index
        lo, hi = -1, len(hashes) - 1  # the deepest depth with an accepted holder is in lo..hi (-1: none)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            holders = index.get(hashes[mid])
            if holders and any(accept(s) for s in holders):
                lo = mid
            else:
                hi = mid - 1
        if lo < 0:
            return None
        return min((s for s in index[hashes[lo]] if accept(s)), key=lambda s: (-self.used[s], s))

    # ----------------------------------------------------------------------------- updates
    def grow(self, slots: int) -> None:
        """Add empty slots up to ``slots``."""
        extra = slots - len(self.ids)
        self.ids += [[] for _ in range(extra)]
        self._hashes += [[] for _ in range(extra)]
        self.keys += [None] * extra
        self.used += [0] * extra

    def shrink(self, slots: int) -> None:
        """Keep the first ``slots`` slots (the engine's cache lost the others): their keys and what
        they held are forgotten."""
        for slot in range(slots, len(self.ids)):
            self.forget(slot)
        del self.ids[slots:], self._hashes[slots:], self.keys[slots:], self.used[slots:]

    def assign(self, plan: Plan, key: Hashable) -> None:
        """Pin ``key`` to ``plan.slot`` (unpinning the key it evicts)."""
        if plan.evicts is not None:
            del self.slot_of[plan.evicts]
        self.keys[plan.slot] = key
        self.slot_of[key] = plan.slot
        self._tick += 1
        self.used[plan.slot] = self._tick

    def held_hashes(self, slot: int) -> list[int]:
        """The chain hashes of the whole blocks ``slot`` holds (see :func:`block_hashes`)."""
        return self._hashes[slot]

    def hashes(self, prompt: Sequence[int], key: Hashable) -> list[int]:
        """:func:`block_hashes` of ``prompt``, reusing those of what ``key``'s slot holds (its last prompt)."""
        slot = self.slot_of.get(key)
        if slot is None:
            return block_hashes(prompt)
        known = self._hashes[slot]
        out = list(known[: min(self.common(slot, prompt) // BLOCK, len(known))])
        return out + block_hashes(prompt[len(out) * BLOCK :], chain=out[-1] if out else 0)

    def store(self, slot: int, ids: Sequence[int], hashes: Sequence[int] | None = None) -> None:
        """The slot now holds the K/V of ``ids`` (positions ``0..len(ids)-1``). Only the blocks past
        what it shares with the slot's previous ids are hashed (unless ``hashes``, their
        :func:`block_hashes` computed for the plan, are given) and re-indexed."""
        old = self._hashes[slot]
        # the blocks it shares with what the slot held keep their hashes (and index entries); past them
        # the chain hashes differ (a collision would only re-add what it drops)
        keep = min(self.common(slot, ids) // BLOCK, len(old))
        if hashes is not None:
            new = list(hashes)
        else:
            tail = ids[keep * BLOCK :] if keep else ids
            new = old[:keep] + block_hashes(tail, chain=old[keep - 1] if keep else 0)
        self._replace(slot, ids, new, keep)

    def _replace(self, slot: int, ids: Sequence[int], new: list[int], keep: int) -> None:
        """The slot holds ``ids`` now, hashed ``new``, whose first ``keep`` hashes it held already."""
        old = self._hashes[slot]
        self._lcp.pop(slot, None)
        for h in old[keep:]:
            holders = self._index.get(h)
            if holders is not None:
                holders.discard(slot)
                if not holders:
                    del self._index[h]
        self.ids[slot] = list(ids)
        self._hashes[slot] = new
        for h in new[keep:]:
            self._index.setdefault(h, set()).add(slot)

    def extend(self, slot: int, tokens: Sequence[int]) -> None:
        """The slot now also holds ``tokens`` after what it held (a finished generation's K/V): only the
        blocks from the last whole one on are hashed, nothing is compared (what :meth:`store` of the
        whole sequence gives, for a fraction of the work)."""
        ids, hashes = self.ids[slot], self._hashes[slot]
        self._lcp.pop(slot, None)
        ids.extend(tokens)
        h = hashes[-1] if hashes else 0
        for i in range(len(hashes) * BLOCK, len(ids) - BLOCK + 1, BLOCK):
            h = hash((h, tuple(ids[i : i + BLOCK])))
            hashes.append(h)
            self._index.setdefault(h, set()).add(slot)

    def forget(self, slot: int) -> None:
        """The slot's K/V is no longer trustworthy (e.g. a failed prefill)."""
        key = self.keys[slot]
        if key is not None:
            self.slot_of.pop(key, None)
            self.keys[slot] = None
        self.store(slot, [])
