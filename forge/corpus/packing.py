"""Mixture selection and packed token shards for continual pre-training (format: :mod:`contracts.packed`).

``select_mixture`` picks documents per category so their token counts follow the mixing ratios
(1:1:1 agent:code:text in the paper) inside a token budget, and says honestly what it achieved.
``pack_documents`` tokenizes the chosen documents in batches and streams them into fixed-size
shards of raw little-endian token ids, each document followed by the EOS id, plus a manifest.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contracts.packed import FORMAT, MANIFEST_NAME, Manifest, dtype_for_vocab, read_manifest
from forge.core.io import atomic_write_json, file_digest, fingerprint
from forge.core.stats import StepStats
from forge.corpus.tokenizer import atomic_directory

log = logging.getLogger(__name__)

CORE_CATEGORIES = ("agent", "code", "text")
CHARS_PER_TOKEN = 4.0  # rough English BPE average; only used when a row carries no token count

DocSource = Mapping[str, list[dict[str, Any]]] | Callable[[str], Iterable[dict[str, Any]]]


def estimate_tokens(doc: Mapping[str, Any]) -> int:
    """Token estimate of a document: its ``n_tokens`` if present, else ``len(text) / 4`` rounded up."""
    n = doc.get("n_tokens")
    if isinstance(n, int) and n >= 0:
        return n
    return max(1, math.ceil(len(doc.get("text") or "") / CHARS_PER_TOKEN))


def _key(seed: int, *parts: Any) -> int:
    """A stable 64-bit pseudo-random key (same in every process, unlike ``hash``)."""
    payload = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little")


def _first_fit(items: list[tuple[int, Any, int]], target: int) -> tuple[list[Any], int]:
    """Walk ``(key, doc_id, n_tokens)`` in key order, taking each doc that still fits in ``target``."""
    chosen, total = [], 0
    for _, doc_id, n in sorted(items):
        if total + n <= target:
            chosen.append(doc_id)
            total += n
            if total == target:
                break
    return chosen, total


def select_mixture(
    docs_by_category: DocSource,
    ratios: Mapping[str, float],
    token_budget: int,
    *,
    seed: int,
    estimate_tokens: Callable[[Mapping[str, Any]], int] = estimate_tokens,
    allow_repeat: bool = False,
    max_epochs: float = 4.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Choose documents so tokens per category follow ``ratios`` within ``token_budget``.

    Each category's target is ``token_budget * ratio / sum(ratios)``. Documents are visited in the
    order of a seeded hash of their ``doc_id`` (so the choice depends on seed and ids, not on input
    order) and taken while they fit; the total never exceeds the target. A category with fewer
    tokens than its target is taken whole and reported as short; its shortfall is *not* given to
    the others, so the achieved ratios in the report differ from the targets and say so. With
    ``allow_repeat`` a short category is repeated (whole epochs, then a seeded partial epoch) up to
    ``max_epochs`` passes; each returned row carries its ``epoch`` (0 = first use).

    ``docs_by_category`` is a dict of lists, or a callable ``category -> iterable of docs`` that is
    called twice (a planning pass that keeps only ids and token counts, then a fetch pass) and
    must yield the same documents both times. Rows without ``doc_id``, or repeating an id within
    a category, are dropped and counted in ``report["dropped"]``.
    Returns ``(selected, report)``; ``selected`` is shallow copies of the input rows with
    ``category`` and ``epoch`` set, in a seeded order that interleaves categories.
    """
    if token_budget < 0:
        raise ValueError(f"token_budget must be >= 0, got {token_budget}")
    if any(r < 0 for r in ratios.values()) or sum(ratios.values()) <= 0:
        raise ValueError(f"ratios must be >= 0 with a positive sum, got {dict(ratios)}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    total_ratio = float(sum(ratios.values()))
    target_ratios = {c: r / total_ratio for c, r in ratios.items()}
    stats = StepStats("select_mixture")

    def source(cat: str) -> Iterable[dict[str, Any]]:
        if callable(docs_by_category):
            return docs_by_category(cat)
        return docs_by_category.get(cat, [])

    # Pass 1: plan on (key, doc_id, n_tokens) only.
    plan: dict[str, list[tuple[Any, int]]] = {}  # category -> [(doc_id, epoch)]
    per_cat: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for cat, ratio in target_ratios.items():
        sizes: dict[Any, int] = {}
        for doc in source(cat):
            doc_id = doc.get("doc_id")
            if doc_id is None:
                stats.drop("missing_doc_id", f"{cat}: {str(doc)[:120]}")
            elif doc_id in sizes:
                stats.drop("duplicate_doc_id", f"{cat}: {doc_id}")
            else:
                sizes[doc_id] = int(estimate_tokens(doc))
                stats.keep()
        available = sum(sizes.values())
        target = int(token_budget * ratio)
        chosen: list[tuple[Any, int]] = []
        if available <= target:
            chosen = [(d, 0) for d in sizes]
            taken = available
            if allow_repeat and available > 0:
                full = int(min(target // available, math.floor(max_epochs)))
                chosen = [(d, e) for e in range(full) for d in sizes]
                taken = full * available
                room = min(target - taken, int((max_epochs - full) * available))
                if room > 0:
                    items = [(_key(seed, cat, full, d), d, n) for d, n in sizes.items()]
                    extra, n_extra = _first_fit(items, room)
                    chosen += [(d, full) for d in extra]
                    taken += n_extra
        else:
            items = [(_key(seed, cat, 0, d), d, n) for d, n in sizes.items()]
            ids, taken = _first_fit(items, target)
            chosen = [(d, 0) for d in ids]
        plan[cat] = chosen
        per_cat[cat] = {
            "available_tokens": available,
            "available_documents": len(sizes),
            "target_tokens": target,
            "selected_tokens": taken,
            "selected_documents": len(chosen),
            "epochs": round(taken / available, 4) if available else 0.0,
            "shortfall_tokens": max(0, target - taken),
            "short": available < target,
        }
        if available < target:
            how = f"repeated to {per_cat[cat]['epochs']} epochs" if allow_repeat else "took all of it"
            notes.append(
                f"category {cat!r} has {available} tokens < target {target}: {how}; "
                f"shortfall {per_cat[cat]['shortfall_tokens']} tokens"
            )

    # Pass 2: fetch the chosen rows.
    selected: list[tuple[int, dict[str, Any]]] = []
    for cat, chosen in plan.items():
        uses: dict[Any, list[int]] = defaultdict(list)
        for doc_id, epoch in chosen:
            uses[doc_id].append(epoch)
        seen: set[Any] = set()
        for doc in source(cat):
            doc_id = doc.get("doc_id")
            if doc_id in uses and doc_id not in seen:
                seen.add(doc_id)
                for epoch in uses[doc_id]:
                    selected.append(
                        (_key(seed, "order", cat, epoch, doc_id), {**doc, "category": cat, "epoch": epoch})
                    )
        if len(seen) != len(uses):
            raise RuntimeError(
                f"category {cat!r}: the document source returned different documents on the second pass"
            )
    selected.sort(key=lambda kv: kv[0])
    rows = [doc for _, doc in selected]

    n_sel = sum(c["selected_tokens"] for c in per_cat.values())
    achieved = {c: (v["selected_tokens"] / n_sel if n_sel else 0.0) for c, v in per_cat.items()}
    unused = sorted(set(docs_by_category) - set(ratios)) if isinstance(docs_by_category, Mapping) else []
    if unused:
        notes.append(f"categories without a ratio were not used: {unused}")
    report = {
        "seed": seed,
        "token_budget": token_budget,
        "allow_repeat": allow_repeat,
        "max_epochs": max_epochs,
        "target_ratios": target_ratios,
        "achieved_ratios": achieved,
        "n_tokens_selected": n_sel,
        "n_documents_selected": len(rows),
        "categories": per_cat,
        "unused_categories": unused,
        "notes": notes,
        "dropped": stats.as_dict(),
    }
    for note in notes:
        log.warning("select_mixture: %s", note)
    return rows, report


class _ShardWriter:
    """Streams token arrays into ``shard_NNNNN.bin`` files of exactly ``shard_tokens`` ids (last one shorter)."""

    def __init__(self, out_dir: Path, shard_tokens: int, dtype: np.dtype):
        self.out_dir, self.shard_tokens, self.dtype = out_dir, shard_tokens, dtype
        self.shards: list[dict[str, Any]] = []
        self._fh = None
        self._hash = None
        self._n = 0

    def _open(self) -> None:
        name = f"shard_{len(self.shards):05d}.bin"
        self._fh = open(self.out_dir / name, "wb")  # noqa: SIM115 - closed in _close
        self._name, self._hash, self._n = name, hashlib.sha256(), 0

    def _close(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.shards.append({"path": self._name, "n_tokens": self._n, "sha256": self._hash.hexdigest()})
        self._fh = None

    def write(self, ids: np.ndarray) -> None:
        arr = np.ascontiguousarray(ids, dtype=self.dtype.newbyteorder("<"))
        while arr.size:
            if self._fh is None:
                self._open()
            room = self.shard_tokens - self._n
            part, arr = arr[:room], arr[room:]
            data = part.tobytes()
            self._fh.write(data)
            self._hash.update(data)
            self._n += part.size
            if self._n == self.shard_tokens:
                self._close()

    def finish(self) -> list[dict[str, Any]]:
        self._close()
        return self.shards


def _encode_batch(backend: Any, texts: list[str]) -> list[list[int]]:
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
    return [e.ids for e in encode(texts, add_special_tokens=False)]


def pack_documents(
    docs: Iterable[Mapping[str, Any]],
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    shard_tokens: int = 2**24,
    batch_size: int = 256,
    stats: StepStats | None = None,
) -> dict[str, Any]:
    """Tokenize ``docs`` (``doc_id``, ``category``, ``text``) into packed shards; return the manifest.

    Documents are written in input order, each followed by ``eos_id``; shards hold exactly
    ``shard_tokens`` ids except the last, so a document may continue in the next shard (a reader
    concatenates shards in manifest order). Ids are uint16 when ``len(tokenizer) <= 65535``, else
    uint32. ``tokens_by_category`` counts each document's ids plus its EOS, so it sums to
    ``n_tokens``. Text is encoded with added tokens matched, so a chat-formatted trajectory gets
    its control tokens as single ids (a literal ``<|endoftext|>`` in text becomes a separator).
    Rows without text or category are dropped and counted in ``stats``. Everything is written to a
    temporary sibling directory that replaces ``out_dir`` only when complete; memory holds one
    batch at a time.
    """
    from transformers import AutoTokenizer

    if shard_tokens <= 0 or batch_size <= 0:
        raise ValueError("shard_tokens and batch_size must be positive")
    stats = stats if stats is not None else StepStats("pack_documents")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer at {tokenizer_dir} has no eos_token")
    eos_id, vocab_size = int(tok.eos_token_id), len(tok)
    dtype = np.dtype(dtype_for_vocab(vocab_size))
    backend = tok.backend_tokenizer
    by_cat: dict[str, int] = dict.fromkeys(CORE_CATEGORIES, 0)
    n_docs = 0

    with atomic_directory(out_dir) as tmp:
        writer = _ShardWriter(tmp, shard_tokens, dtype)

        def flush(batch: list[tuple[str, str]]) -> None:
            nonlocal n_docs
            for (cat, _), ids in zip(batch, _encode_batch(backend, [t for _, t in batch]), strict=True):
                ids.append(eos_id)
                writer.write(np.asarray(ids, dtype=dtype))
                by_cat[cat] = by_cat.get(cat, 0) + len(ids)
                n_docs += 1

        batch: list[tuple[str, str]] = []
        for doc in docs:
            text, cat = doc.get("text"), doc.get("category")
            if not isinstance(text, str) or not text:
                stats.drop("empty_or_missing_text", doc.get("doc_id"))
                continue
            if not isinstance(cat, str) or not cat:
                stats.drop("missing_category", doc.get("doc_id"))
                continue
            stats.keep()
            batch.append((cat, text))
            if len(batch) >= batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        shards = writer.finish()
        n_tokens = sum(s["n_tokens"] for s in shards)
        manifest = Manifest(
            dtype=dtype.name,
            eos_id=eos_id,
            vocab_size=vocab_size,
            tokenizer_dir=str(tokenizer_dir),
            n_tokens=n_tokens,
            shards=shards,
            n_documents=n_docs,
            tokens_by_category=by_cat,
            fingerprint=fingerprint(
                FORMAT, file_digest(tokenizer_dir), shard_tokens, [s["sha256"] for s in shards]
            ),
        ).to_json()
        atomic_write_json(tmp / MANIFEST_NAME, manifest)
    log.info("packed %d documents, %d tokens, %d shards -> %s", n_docs, n_tokens, len(shards), out_dir)
    return manifest


def iter_token_windows(packed_dir: str | os.PathLike[str], seq_len: int) -> Iterator[np.ndarray]:
    """Consecutive non-overlapping windows of ``seq_len`` ids across all shards (memory-mapped).

    Windows run across shard boundaries; the final partial window is not yielded.
    """
    if seq_len <= 0:
        raise ValueError("seq_len must be positive")
    packed_dir = Path(packed_dir)
    manifest = read_manifest(packed_dir)
    dtype = np.dtype(manifest.dtype).newbyteorder("<")
    carry = np.empty(0, dtype=dtype)
    for shard in manifest.shards:
        if shard["n_tokens"] == 0:
            continue
        data = np.memmap(packed_dir / shard["path"], dtype=dtype, mode="r", shape=(shard["n_tokens"],))
        start = 0
        if carry.size:
            need = seq_len - carry.size
            carry = np.concatenate([carry, data[:need]])
            start = min(need, data.size)
            if carry.size < seq_len:
                continue
            yield carry
            carry = np.empty(0, dtype=dtype)
        n_full = (data.size - start) // seq_len
        for i in range(n_full):
            yield np.array(data[start + i * seq_len : start + (i + 1) * seq_len])
        carry = np.array(data[start + n_full * seq_len :])
