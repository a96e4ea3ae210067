"""Packed token shards for continual pre-training (format: :mod:`contracts.packed`), resumable,
with token-level lineage.

Packing is three steps, each resumable after a kill: tokenize the documents into a spool
(:mod:`forge.corpus.spool`: parts with completion markers), decide which documents go in and in
what order (a :class:`PackPlan`: plain packing keeps the input order; a mixture selects by exact
token counts, :mod:`forge.corpus.selection`), then copy the planned token runs into fixed-size
shards, each written to its final name with a completion marker beside it. A rerun with the same
inputs reuses the finished spool parts and shards and writes only the rest, so its output is byte
for byte the output of an uninterrupted run. The work lives in a hidden sibling of the output
(``.<name>.work``) and is removed once the finished directory has been swapped in.

Beside the shards: ``spans.parquet`` maps every piece of a document in a shard (shard, offset,
length) to its ``doc_id``, ``documents.parquet`` holds each packed document's lineage columns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.packed import (
    DOCUMENTS_NAME,
    DOCUMENTS_SCHEMA,
    FORMAT,
    MANIFEST_NAME,
    SPANS_NAME,
    SPANS_SCHEMA,
    Manifest,
    read_manifest,
)
from forge.core.io import atomic_write_json, fingerprint, swap_directory
from forge.core.stats import StepStats
from forge.corpus.spool import PART_ROWS, Spool, TokenEncoder, encode_to_spool

log = logging.getLogger(__name__)

CORE_CATEGORIES = ("agent", "code", "text")
DEFAULT_SHARD_TOKENS = 2**24


def work_dir_for(out_dir: str | os.PathLike[str]) -> Path:
    """Where packing into ``out_dir`` keeps its resumable state (a hidden sibling)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.work"


@dataclass
class PackPlan:
    """What goes into the shards, in order: use ``k`` is row ``row[k]`` of ``spools[spool[k]]``,
    ``n_tokens[k]`` of its ids (all of them, EOS included, unless ``truncated[k]``: then its first
    ``n_tokens[k] - 1`` ids and EOS), its ``epoch[k]``-th use."""

    spools: list[Spool]
    spool: np.ndarray
    row: np.ndarray
    n_tokens: np.ndarray
    truncated: np.ndarray
    epoch: np.ndarray

    @classmethod
    def whole(cls, spool: Spool) -> PackPlan:
        """Every document of one spool once, in spool order."""
        n = spool.index.num_rows
        return cls(
            [spool],
            np.zeros(n, dtype=np.int32),
            np.arange(n, dtype=np.int64),
            spool.n_tokens.astype(np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=np.int32),
        )

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for a in (self.spool, self.row, self.n_tokens, self.truncated, self.epoch):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(b"|")
        for sp in self.spools:
            for marker in sorted(sp.dir.glob("part-*.json")):
                h.update(marker.read_bytes())
        return h.hexdigest()


def _spans(starts: np.ndarray, sizes: np.ndarray, shard_tokens: int) -> dict[str, np.ndarray]:
    """Split every use ``[start, start + size)`` of the packed stream at shard boundaries."""
    ends = starts + sizes
    first, last = starts // shard_tokens, (ends - 1) // shard_tokens
    n_pieces = last - first + 1
    use = np.repeat(np.arange(starts.size), n_pieces)
    # the piece's rank within its use: 0 in the use's first shard, 1 in the next, ...
    rank = np.arange(use.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    shard = first[use] + rank
    lo = np.maximum(starts[use], shard * shard_tokens)
    hi = np.minimum(ends[use], (shard + 1) * shard_tokens)
    return {
        "use": use,
        "shard": shard,
        "offset": lo - shard * shard_tokens,
        "length": hi - lo,
        "doc_start": lo - starts[use],
    }


class _UseReader:
    """The token ids of planned uses, from memory-mapped spool parts (opened once each)."""

    def __init__(self, plan: PackPlan, eos_id: int):
        self.plan, self.eos_id = plan, eos_id
        self._maps: dict[tuple[int, int], np.ndarray] = {}
        self._part = [sp.index["part"].to_numpy() for sp in plan.spools]
        self._start = [sp.index["start"].to_numpy() for sp in plan.spools]
        self._size = [sp.n_tokens for sp in plan.spools]

    def tokens(self, k: int) -> np.ndarray:
        s, r = int(self.plan.spool[k]), int(self.plan.row[k])
        part = int(self._part[s][r])
        data = self._maps.get((s, part))
        if data is None:
            data = self._maps[(s, part)] = self.plan.spools[s].part(part)
        start = int(self._start[s][r])
        ids = data[start : start + int(self._size[s][r])]
        if self.plan.truncated[k]:
            n = int(self.plan.n_tokens[k])
            ids = np.concatenate([ids[: n - 1], np.asarray([self.eos_id], dtype=ids.dtype)])
        return ids


def _shard_done(shards_dir: Path, i: int) -> dict[str, Any] | None:
    marker = shards_dir / f"shard_{i:05d}.json"
    if not marker.is_file():
        return None
    entry = json.loads(marker.read_text())
    path = shards_dir / entry["path"]
    return entry if path.is_file() and path.stat().st_size == entry["n_tokens"] * entry["itemsize"] else None


def _write_shard(
    shards_dir: Path, i: int, lo: int, hi: int, starts: np.ndarray, reader: _UseReader, dtype: np.dtype
) -> dict[str, Any]:
    name = f"shard_{i:05d}.bin"
    tmp = shards_dir / f".{name}.tmp"
    h = hashlib.sha256()
    ends = starts + reader.plan.n_tokens
    k = int(np.searchsorted(ends, lo, side="right"))
    with open(tmp, "wb") as fh:
        while k < starts.size and starts[k] < hi:
            s = int(starts[k])
            ids = reader.tokens(k)
            piece = np.ascontiguousarray(ids[max(lo - s, 0) : min(hi - s, ids.size)], dtype=dtype)
            data = piece.tobytes()
            fh.write(data)
            h.update(data)
            k += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, shards_dir / name)
    entry = {"path": name, "n_tokens": hi - lo, "sha256": h.hexdigest(), "itemsize": dtype.itemsize}
    atomic_write_json(shards_dir / f"shard_{i:05d}.json", entry)
    return entry


def write_packed(
    plan: PackPlan,
    encoder: TokenEncoder,
    out_dir: str | os.PathLike[str],
    *,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    sampling: str | None = None,
    sources: Mapping[str, dict[str, Any]] | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Copy the planned uses into shards of exactly ``shard_tokens`` ids (the last one shorter),
    resuming the shards a killed run finished; write the lineage sidecars and the manifest, swap
    the directory into ``out_dir`` and return the manifest. ``on_shard(i)`` runs after shard ``i``
    is written (progress; tests use it to stop a run midway)."""
    if shard_tokens <= 0:
        raise ValueError("shard_tokens must be positive")
    out_dir = Path(out_dir)
    shards_dir = work_dir_for(out_dir) / "shards"
    key = {"plan": plan.digest(), "tokenizer": encoder.digest, "shard_tokens": shard_tokens}
    key_path = shards_dir / "plan.json"
    if key_path.is_file() and json.loads(key_path.read_text()) != key:
        shutil.rmtree(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(key_path, key)

    sizes = plan.n_tokens.astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    n_tokens = int(sizes.sum())
    reader = _UseReader(plan, encoder.eos_id)
    shards: list[dict[str, Any]] = []
    written = 0
    for i in range(-(-n_tokens // shard_tokens)):
        entry = _shard_done(shards_dir, i)
        if entry is None:
            lo, hi = i * shard_tokens, min((i + 1) * shard_tokens, n_tokens)
            entry = _write_shard(shards_dir, i, lo, hi, starts, reader, encoder.dtype)
            written += 1
            if on_shard is not None:
                on_shard(i)
        shards.append({k: entry[k] for k in ("path", "n_tokens", "sha256")})

    # Lineage: every piece of every use, and each packed document's lineage row.
    sp = _spans(starts, sizes, shard_tokens)
    use = sp["use"]
    doc_ids = (
        np.concatenate([s.index["doc_id"].to_numpy(zero_copy_only=False) for s in plan.spools])
        if plan.spools
        else np.empty(0, object)
    )
    cats = (
        np.concatenate([s.index["category"].to_numpy(zero_copy_only=False) for s in plan.spools])
        if plan.spools
        else np.empty(0, object)
    )
    offsets = np.cumsum([0] + [s.index.num_rows for s in plan.spools])
    flat = offsets[plan.spool] + plan.row  # index into the concatenated spool indexes
    spans = pa.table(
        {
            "shard": pa.array(sp["shard"], pa.int32()),
            "offset": pa.array(sp["offset"], pa.int64()),
            "length": pa.array(sp["length"], pa.int64()),
            "doc_id": pa.array(doc_ids[flat[use]], pa.string()),
            "category": pa.array(cats[flat[use]], pa.string()),
            "epoch": pa.array(plan.epoch[use], pa.int32()),
            "doc_token_start": pa.array(sp["doc_start"], pa.int64()),
            "is_truncated": pa.array(plan.truncated[use], pa.bool_()),
        },
        schema=SPANS_SCHEMA,
    )
    pq.write_table(spans, shards_dir / SPANS_NAME, compression="zstd")
    index = (
        pa.concat_tables([s.index.select(DOCUMENTS_SCHEMA.names) for s in plan.spools])
        if plan.spools
        else DOCUMENTS_SCHEMA.empty_table()
    )
    pq.write_table(index.take(pa.array(np.unique(flat))), shards_dir / DOCUMENTS_NAME, compression="zstd")

    by_cat: dict[str, int] = dict.fromkeys(CORE_CATEGORIES, 0)
    use_cats = cats[flat]
    for cat in sorted(set(use_cats.tolist())):
        by_cat[cat] = int(sizes[use_cats == cat].sum())
    manifest = Manifest(
        dtype=encoder.dtype.name,
        eos_id=encoder.eos_id,
        vocab_size=encoder.vocab_size,
        tokenizer_dir=encoder.tokenizer_dir,
        n_tokens=n_tokens,
        shards=shards,
        n_documents=int(sizes.size),
        tokens_by_category=by_cat,
        fingerprint=fingerprint(FORMAT, encoder.digest, shard_tokens, [s["sha256"] for s in shards]),
        sampling=sampling,
        sources=dict(sources or {}),
        lineage={"spans": SPANS_NAME, "documents": DOCUMENTS_NAME},
    ).to_json()
    atomic_write_json(shards_dir / MANIFEST_NAME, manifest)
    for extra in [key_path, *shards_dir.glob("shard_*.json")]:
        extra.unlink()
    swap_directory(shards_dir, out_dir)
    shutil.rmtree(work_dir_for(out_dir), ignore_errors=True)
    log.info(
        "packed %d uses, %d tokens, %d shards (%d written, %d resumed) -> %s",
        sizes.size, n_tokens, len(shards), written, len(shards) - written, out_dir,
    )  # fmt: skip
    return manifest


def pack_documents(
    docs: Iterable[Mapping[str, Any]],
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    stats: StepStats | None = None,
    on_shard: Callable[[int], None] | None = None,
    part_rows: int = PART_ROWS,
) -> dict[str, Any]:
    """Tokenize ``docs`` (``doc_id``, ``category``, ``text``, lineage columns) into packed shards in
    input order, each document followed by EOS; return the manifest.

    Shards hold exactly ``shard_tokens`` ids except the last, so a document may continue in the
    next shard (a reader concatenates shards in manifest order). Ids are uint16 when
    ``len(tokenizer) <= 65535``, else uint32. ``tokens_by_category`` counts each document's ids
    plus its EOS, so it sums to ``n_tokens``. Text is encoded with added tokens matched (a literal
    ``<|endoftext|>`` in text becomes a separator). Rows without ``doc_id``, text or category are
    dropped and counted in ``stats``. A killed run resumes from its finished spool parts and
    shards; ``out_dir`` is replaced only when complete.
    """
    encoder = TokenEncoder(tokenizer_dir)
    work = work_dir_for(out_dir)
    spool, _ = encode_to_spool(docs, encoder, work / "spool", stats=stats, part_rows=part_rows)
    return write_packed(PackPlan.whole(spool), encoder, out_dir, shard_tokens=shard_tokens, on_shard=on_shard)


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
