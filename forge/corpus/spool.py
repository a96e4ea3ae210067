"""Tokenized documents spooled to disk in resumable parts: tokenize once, count exactly, pack later.

Selection by real token counts needs every candidate tokenized before choosing, and packing needs
the ids of the chosen ones; the spool keeps them so nothing is tokenized twice. A spool directory
holds, per part of the input stream (a run of rows of bounded count and characters):

- ``part-NNNNN.bin``: the ids of the part's documents, each followed by the EOS id (the packed
  dtype, little-endian), back to back;
- ``part-NNNNN.parquet``: one row per kept document, in stream order: its lineage columns
  (:data:`contracts.packed.DOCUMENT_LINEAGE_COLUMNS`) and ``n_tokens`` (ids + EOS);
- ``part-NNNNN.json``: the completion marker, written last: a digest of the part's input rows,
  the rows read and the drops by reason.

A rerun after a kill re-reads the input, and reuses every part whose marker holds the digest of
the same rows (the tokenizer's digest is in the spool's ``spool.json``); from the first part that
differs on, everything is re-tokenized. Reading rows is cheap next to tokenizing them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.packed import DOCUMENT_LINEAGE_COLUMNS, DOCUMENTS_SCHEMA, dtype_for_vocab
from forge.core.io import atomic_write_json, file_digest
from forge.core.stats import StepStats

#: A part closes after this many input rows or characters of text, whichever comes first: the
#: unit of resumption, and of memory (one part's rows are held while it is checked or encoded).
PART_ROWS = 20_000
PART_CHARS = 32 * 2**20
#: Texts per ``encode_batch`` call: large, so the tokenizer's threads have work to share.
ENCODE_BATCH = 8192
SPOOL_FORMAT = "hephaestus-spool-v1"


class TokenEncoder:
    """A corpus tokenizer's fast backend, its EOS id and the packed dtype of its ids."""

    def __init__(self, tokenizer_dir: str | os.PathLike[str]):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if tok.eos_token_id is None:
            raise ValueError(f"tokenizer at {tokenizer_dir} has no eos_token")
        self.tokenizer_dir = str(tokenizer_dir)
        self.eos_id = int(tok.eos_token_id)
        self.vocab_size = len(tok)
        self.dtype = np.dtype(dtype_for_vocab(self.vocab_size)).newbyteorder("<")
        self.backend = tok.backend_tokenizer
        # encode_batch, not encode_batch_fast: measured 20% faster on rendered API docs
        # (bench/tokenize_pack.py), although the latter skips the offsets
        self._encode = self.backend.encode_batch
        self.digest = file_digest(tokenizer_dir)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: every text's ids followed by EOS, concatenated; lengths include EOS.

        Added tokens are matched (a chat-formatted trajectory gets its control tokens as single
        ids). The per-token work stays in Rust and numpy: one array per document, one concatenation.
        """
        arrays = [np.array(e.ids, dtype=self.dtype) for e in self._encode(texts, add_special_tokens=False)]
        lengths = np.fromiter((a.size + 1 for a in arrays), dtype=np.int64, count=len(arrays))
        eos = np.full(1, self.eos_id, dtype=self.dtype)
        flat = np.concatenate([x for a in arrays for x in (a, eos)]) if arrays else np.empty(0, self.dtype)
        return flat, lengths


@dataclass
class Spool:
    """A finished spool: the index of every kept document and memory maps of the parts."""

    dir: Path
    dtype: np.dtype
    index: pa.Table  # DOCUMENTS_SCHEMA, plus int32 ``part`` and int64 ``start`` (tokens in part)

    @property
    def n_tokens(self) -> np.ndarray:
        return self.index["n_tokens"].to_numpy()

    def part(self, i: int) -> np.ndarray:
        path = self.dir / f"part-{i:05d}.bin"
        if path.stat().st_size == 0:
            return np.empty(0, dtype=self.dtype)
        # a plain ndarray view of the map: slicing it skips np.memmap's per-call Python overhead
        return np.memmap(path, dtype=self.dtype, mode="r").view(np.ndarray)


def _row_digest(h: Any, row: Mapping[str, Any]) -> None:
    values = (
        "\x00" if row.get(c) is None else "\x01" + str(row.get(c))
        for c in (*DOCUMENT_LINEAGE_COLUMNS, "text")
    )
    h.update("\x1f".join(values).encode("utf-8", "surrogatepass"))


def _parts(docs: Iterable[Mapping[str, Any]], part_rows: int, part_chars: int) -> Iterator[list]:
    part: list[Mapping[str, Any]] = []
    chars = 0
    for row in docs:
        part.append(row)
        text = row.get("text")
        chars += len(text) if isinstance(text, str) else 0
        if len(part) >= part_rows or chars >= part_chars:
            yield part
            part, chars = [], 0
    if part:
        yield part


def _write_part(spool_dir: Path, k: int, rows: list, enc: TokenEncoder, digest: str) -> dict[str, Any]:
    """Encode one part's rows and write its three files (marker last); return the marker."""
    stats = StepStats("spool")
    kept: list[Mapping[str, Any]] = []
    for row in rows:
        text, cat = row.get("text"), row.get("category")
        if row.get("doc_id") is None:
            stats.drop("missing_doc_id", str(row)[:120])
        elif not isinstance(text, str) or not text:
            stats.drop("empty_or_missing_text", row.get("doc_id"))
        elif not isinstance(cat, str) or not cat:
            stats.drop("missing_category", row.get("doc_id"))
        else:
            kept.append(row)
    bin_path = spool_dir / f"part-{k:05d}.bin"
    tmp = bin_path.with_suffix(".bin.tmp")
    lengths: list[np.ndarray] = []
    with open(tmp, "wb") as fh:
        for i in range(0, len(kept), ENCODE_BATCH):
            flat, n = enc.encode([r["text"] for r in kept[i : i + ENCODE_BATCH]])
            fh.write(flat.tobytes())
            lengths.append(n)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, bin_path)
    n_tokens = np.concatenate(lengths) if lengths else np.empty(0, dtype=np.int64)
    cols = {c: [None if r.get(c) is None else str(r.get(c)) for r in kept] for c in DOCUMENT_LINEAGE_COLUMNS}
    table = pa.table({**cols, "n_tokens": pa.array(n_tokens, pa.int64())}, schema=DOCUMENTS_SCHEMA)
    tmp_pq = spool_dir / f".part-{k:05d}.parquet.tmp"
    pq.write_table(table, tmp_pq)
    os.replace(tmp_pq, spool_dir / f"part-{k:05d}.parquet")
    marker = {
        "digest": digest,
        "n_input": len(rows),
        "n_docs": len(kept),
        "n_tokens": int(n_tokens.sum()),
        "dropped": dict(stats.dropped),
    }
    atomic_write_json(spool_dir / f"part-{k:05d}.json", marker)
    return marker


def _reusable(spool_dir: Path, k: int, digest: str) -> dict[str, Any] | None:
    path = spool_dir / f"part-{k:05d}.json"
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    ok = (
        marker.get("digest") == digest
        and (spool_dir / f"part-{k:05d}.bin").is_file()
        and (spool_dir / f"part-{k:05d}.parquet").is_file()
    )
    return marker if ok else None


def _remove_parts_from(spool_dir: Path, k: int) -> None:
    for path in spool_dir.glob("part-*"):
        stem = path.name.split(".", 1)[0]
        if int(stem.removeprefix("part-")) >= k:
            path.unlink()


def encode_to_spool(
    docs: Iterable[Mapping[str, Any]],
    encoder: TokenEncoder,
    spool_dir: str | os.PathLike[str],
    *,
    stats: StepStats | None = None,
    part_rows: int = PART_ROWS,
    part_chars: int = PART_CHARS,
) -> tuple[Spool, dict[str, int]]:
    """Tokenize ``docs`` (``doc_id``, ``category``, ``text``, lineage columns) into ``spool_dir``,
    reusing the parts a killed run finished; return the spool and how many parts were reused/encoded.

    Rows without ``doc_id``, text or category are counted in ``stats`` by reason and not spooled.
    """
    spool_dir = Path(spool_dir)
    stats = stats if stats is not None else StepStats("spool")
    head = {"format": SPOOL_FORMAT, "tokenizer": encoder.digest, "dtype": encoder.dtype.name}
    head_path = spool_dir / "spool.json"
    if head_path.is_file() and json.loads(head_path.read_text()) != head:
        shutil.rmtree(spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(head_path, head)
    counts = {"parts_reused": 0, "parts_encoded": 0}
    stale = False
    n_parts = 0
    for k, rows in enumerate(_parts(docs, part_rows, part_chars)):
        h = hashlib.blake2b(digest_size=16)
        for row in rows:
            _row_digest(h, row)
        digest = h.hexdigest()
        marker = None if stale else _reusable(spool_dir, k, digest)
        if marker is None:
            if not stale:
                _remove_parts_from(spool_dir, k)
                stale = True
            marker = _write_part(spool_dir, k, rows, encoder, digest)
            counts["parts_encoded"] += 1
        else:
            counts["parts_reused"] += 1
        stats.keep(marker["n_docs"])
        for reason, n in marker["dropped"].items():
            stats.n_in += n
            stats.dropped[reason] += n
        n_parts = k + 1
    _remove_parts_from(spool_dir, n_parts)
    return _open_spool(spool_dir, encoder.dtype, n_parts), counts


def _open_spool(spool_dir: Path, dtype: np.dtype, n_parts: int) -> Spool:
    tables = []
    for i in range(n_parts):
        t = pq.read_table(spool_dir / f"part-{i:05d}.parquet", schema=DOCUMENTS_SCHEMA)
        n = t["n_tokens"].to_numpy()
        starts = np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else np.empty(0, dtype=np.int64)
        t = t.append_column("part", pa.array(np.full(len(n), i, dtype=np.int32)))
        tables.append(t.append_column("start", pa.array(starts.astype(np.int64))))
    if not tables:
        schema = DOCUMENTS_SCHEMA.append(pa.field("part", pa.int32())).append(pa.field("start", pa.int64()))
        return Spool(spool_dir, dtype, schema.empty_table())
    return Spool(spool_dir, dtype, pa.concat_tables(tables))
