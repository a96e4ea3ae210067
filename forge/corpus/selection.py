"""Choosing a mixture's documents by their exact token counts (ids + EOS, the corpus tokenizer's).

Each source (a category: agent, code, text, ...) gets ``token_budget * ratio / sum(ratios)``
tokens. The counts are the real ones of the tokenizer that packs the shards, so a budget is a
budget: a source with enough tokens lands on its target exactly (one document cut to fill the
remainder, ``fill``), or within the smallest document when cutting is off. A source with fewer
tokens than its target is taken whole (or repeated, up to ``max_epochs`` passes) and reported as
short; its shortfall is not handed to the others, so achieved ratios are reported beside targets.

Sampling:

- ``without_replacement``: documents in the order of a seeded hash of their id, each taken while
  it fits; a source short of its target makes whole passes, then a partial one in a new seeded
  order (each pass is an epoch: a document's ``epoch`` is how many times it was used before).
- ``with_replacement``: documents drawn uniformly at random (seeded), independently, until the
  target is reached; a document's ``epoch`` counts its earlier draws.

Either way the choice depends on the seed and the ids, not on the input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Sampling = Literal["without_replacement", "with_replacement"]
SAMPLINGS: tuple[str, ...] = ("without_replacement", "with_replacement")


def _key(seed: int, *parts: Any) -> int:
    """A stable 64-bit pseudo-random key (same in every process, unlike ``hash``)."""
    payload = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little")


def _keys(seed: int, source: str, epoch: int, doc_ids: Sequence[str]) -> np.ndarray:
    return np.fromiter((_key(seed, source, epoch, d) for d in doc_ids), dtype=np.uint64, count=len(doc_ids))


@dataclass
class Picks:
    """The uses of one source's documents: ``index`` into its document list, ``epoch`` of the use,
    ``n_tokens`` written (the document's size, or less for the one cut to fill the target) and
    whether it was cut (``truncated``: its first ``n_tokens - 1`` ids, then EOS)."""

    index: np.ndarray
    epoch: np.ndarray
    n_tokens: np.ndarray
    truncated: np.ndarray

    @classmethod
    def build(cls, rows: list[tuple[int, int, int, bool]]) -> Picks:
        a = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return cls(a[:, 0], a[:, 1].astype(np.int32), a[:, 2], a[:, 3].astype(bool))


def _first_fit(order: np.ndarray, sizes: np.ndarray, room: int) -> tuple[list[int], int, int | None]:
    """Walk ``order`` taking each document that still fits in ``room``; return the taken indices,
    their tokens, and the first document that did not fit (the one to cut when filling)."""
    taken: list[int] = []
    total = 0
    first_miss: int | None = None
    smallest = int(sizes.min()) if sizes.size else 0
    # The prefix that fits as a whole is taken in one step.
    csum = np.cumsum(sizes[order])
    n_prefix = int(np.searchsorted(csum, room, side="right"))
    taken.extend(order[:n_prefix].tolist())
    total = int(csum[n_prefix - 1]) if n_prefix else 0
    for i in order[n_prefix:].tolist():
        if room - total < smallest:
            if first_miss is None:
                first_miss = i
            break
        n = int(sizes[i])
        if total + n <= room:
            taken.append(i)
            total += n
        elif first_miss is None:
            first_miss = i
    return taken, total, first_miss


def _without_replacement(
    doc_ids: Sequence[str],
    sizes: np.ndarray,
    target: int,
    seed: int,
    source: str,
    max_epochs: float,
    fill: bool,
) -> list[tuple[int, int, int, bool]]:
    available = int(sizes.sum())
    rows: list[tuple[int, int, int, bool]] = []
    cap = min(target, int(max_epochs * available))
    total, epoch = 0, 0
    while total < cap and available > 0:
        room = cap - total
        order = np.argsort(_keys(seed, source, epoch, doc_ids), kind="stable")
        if room >= available:  # a whole pass
            rows += [(i, epoch, int(sizes[i]), False) for i in order.tolist()]
            total += available
            epoch += 1
            continue
        taken, n, miss = _first_fit(order, sizes, room)
        rows += [(i, epoch, int(sizes[i]), False) for i in taken]
        total += n
        if fill and miss is not None and cap - total >= 2:
            rows.append((miss, epoch, cap - total, True))
            total = cap
        break
    return rows


def _with_replacement(
    doc_ids: Sequence[str],
    sizes: np.ndarray,
    target: int,
    seed: int,
    source: str,
    max_epochs: float,
    fill: bool,
) -> list[tuple[int, int, int, bool]]:
    available = int(sizes.sum())
    cap = min(target, int(max_epochs * available))
    if cap <= 0 or not len(doc_ids):
        return []
    rng = np.random.default_rng(_key(seed, source, "with_replacement"))
    smallest = int(sizes.min())
    uses = np.zeros(len(doc_ids), dtype=np.int64)
    rows: list[tuple[int, int, int, bool]] = []
    total = 0
    while cap - total >= smallest:
        for i in rng.integers(0, len(doc_ids), size=4096).tolist():
            room = cap - total
            if room < smallest:
                break
            n = int(sizes[i])
            if n <= room:
                rows.append((i, int(uses[i]), n, False))
                uses[i] += 1
                total += n
            elif fill and room >= 2:
                rows.append((i, int(uses[i]), room, True))
                uses[i] += 1
                total = cap
                break
    if fill and 2 <= cap - total < smallest:
        i = int(rng.integers(0, len(doc_ids)))
        rows.append((i, int(uses[i]), cap - total, True))
    return rows


def select_mixture(
    sources: Mapping[str, tuple[Sequence[str], np.ndarray]],
    ratios: Mapping[str, float],
    token_budget: int,
    *,
    seed: int,
    sampling: str = "without_replacement",
    max_epochs: float = 1.0,
    fill: bool = True,
) -> tuple[dict[str, Picks], dict[str, Any]]:
    """Per source, which documents (by index into its list) and how many tokens of each.

    ``sources`` maps a source to ``(doc_ids, n_tokens)``: its documents' ids and exact sizes (ids
    + EOS); ids must be unique within a source. Returns the picks per source and a report: per
    source the available, target and selected tokens, documents, epochs (selected / available),
    shortfall; target and achieved ratios; notes for every short source.
    """
    if token_budget < 0:
        raise ValueError(f"token_budget must be >= 0, got {token_budget}")
    if any(r < 0 for r in ratios.values()) or sum(ratios.values()) <= 0:
        raise ValueError(f"ratios must be >= 0 with a positive sum, got {dict(ratios)}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    total_ratio = float(sum(ratios.values()))
    targets = {c: int(token_budget * r / total_ratio) for c, r in ratios.items()}
    picks: dict[str, Picks] = {}
    per_source: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    choose = _without_replacement if sampling == "without_replacement" else _with_replacement
    for src, target in targets.items():
        doc_ids, sizes = sources.get(src, ((), np.empty(0, dtype=np.int64)))
        sizes = np.asarray(sizes, dtype=np.int64)
        if len(doc_ids) != sizes.size:
            raise ValueError(f"source {src!r}: {len(doc_ids)} ids but {sizes.size} sizes")
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError(f"source {src!r}: document ids repeat")
        if sizes.size and sizes.min() < 1:
            raise ValueError(f"source {src!r}: a document has no tokens (sizes count the EOS)")
        p = Picks.build(choose(doc_ids, sizes, target, seed, src, max_epochs, fill) if target else [])
        picks[src] = p
        available, selected = int(sizes.sum()), int(p.n_tokens.sum())
        per_source[src] = {
            "available_tokens": available,
            "available_documents": len(doc_ids),
            "target_tokens": target,
            "selected_tokens": selected,
            "selected_documents": int(p.index.size),
            "distinct_documents": int(np.unique(p.index).size),
            "truncated_documents": int(p.truncated.sum()),
            "epochs": round(selected / available, 4) if available else 0.0,
            "max_epoch": int(p.epoch.max()) + 1 if p.epoch.size else 0,
            "shortfall_tokens": max(0, target - selected),
            "short": selected < target and target - selected >= max(2, 0.01 * target),
        }
        if per_source[src]["short"]:
            notes.append(
                f"source {src!r}: {available} tokens available, target {target}, selected {selected} "
                f"({per_source[src]['epochs']} epochs, max_epochs {max_epochs}); shortfall "
                f"{per_source[src]['shortfall_tokens']} tokens"
            )
    n_sel = sum(s["selected_tokens"] for s in per_source.values())
    unused = sorted(set(sources) - set(ratios))
    if unused:
        notes.append(f"sources without a ratio were not used: {unused}")
    report = {
        "seed": seed,
        "token_budget": token_budget,
        "sampling": sampling,
        "max_epochs": max_epochs,
        "fill": fill,
        "target_ratios": {c: r / total_ratio for c, r in ratios.items()},
        "achieved_ratios": {
            c: (s["selected_tokens"] / n_sel if n_sel else 0.0) for c, s in per_source.items()
        },
        "n_tokens_selected": n_sel,
        "n_documents_selected": sum(s["selected_documents"] for s in per_source.values()),
        "sources": per_source,
        "unused_sources": unused,
        "notes": notes,
    }
    return picks, report


def interleave(
    picks: Mapping[str, Picks], doc_ids: Mapping[str, Sequence[str]], seed: int
) -> tuple[list[str], np.ndarray, Picks]:
    """The packing order: every pick of every source in the order of a seeded hash of (source,
    epoch, doc_id), so categories mix through the shards instead of coming in blocks.

    Returns ``(names, source, picks)``: ``source[k]`` indexes ``names`` and ``picks`` holds the
    k-th packed use's document index, epoch, tokens and cut flag.
    """
    names = list(picks)
    keys, src_of, parts = [], [], []
    for s, name in enumerate(names):
        p, ids = picks[name], doc_ids[name]
        keys.append(
            np.fromiter(
                (
                    _key(seed, "order", name, e, ids[i])
                    for i, e in zip(p.index.tolist(), p.epoch.tolist(), strict=True)
                ),
                dtype=np.uint64,
                count=p.index.size,
            )
        )
        src_of.append(np.full(p.index.size, s, dtype=np.int32))
        parts.append(p)
    if not names:
        return names, np.empty(0, dtype=np.int32), Picks.build([])
    order = np.argsort(np.concatenate(keys), kind="stable")
    merged = Picks(
        *(
            np.concatenate([getattr(p, f) for p in parts])[order]
            for f in ("index", "epoch", "n_tokens", "truncated")
        )
    )
    return names, np.concatenate(src_of)[order], merged
