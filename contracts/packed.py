"""The packed-shard format for continual pre-training: written by ``forge.corpus.packing``, read by
``training.data``.

A packed directory holds ``shard_NNNNN.bin`` files of raw little-endian token ids (``uint16`` when
the vocabulary fits, else ``uint32``), each document followed by the EOS id, documents running on
from one shard into the next in manifest order, and ``manifest.json``::

    {"format": "hephaestus-packed-v1", "dtype": "uint16", "eos_id": 0, "vocab_size": 8192,
     "tokenizer_dir": "...", "n_tokens": 123, "n_documents": 4, "tokens_by_category": {...},
     "shards": [{"path": "shard_00000.bin", "n_tokens": 123, "sha256": "..."}], "fingerprint": "...",
     "sampling": "without_replacement", "sources": {"agent": {"epochs": 1.0, ...}},
     "lineage": {"spans": "spans.parquet", "documents": "documents.parquet"}}

``n_tokens`` counts ids (EOS included); shard sizes are ``n_tokens * itemsize`` bytes.
``sources`` holds, per mixture source (a category), the tokens available, targeted and selected
and the epochs that makes (selected / available). ``lineage`` names two sidecar Parquet files:
``spans.parquet`` (:data:`SPANS_SCHEMA`, one row per piece of a document inside one shard: a
document that runs on into the next shard has two rows) and ``documents.parquet`` (one row per
packed document: its lineage columns from the warehouse's ``fct_corpus_documents``), so every
token maps back to the URL or dataset row it came from (:func:`locate_token`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMAT = "hephaestus-packed-v1"
MANIFEST_NAME = "manifest.json"
#: Token id dtypes and their size in bytes (numpy names; little-endian on disk).
DTYPE_ITEMSIZE: dict[str, int] = {"uint16": 2, "uint32": 4}
MAX_UINT16_VOCAB = 65535
SPANS_NAME = "spans.parquet"
DOCUMENTS_NAME = "documents.parquet"
#: One row per piece of a packed document inside one shard, sorted by (shard, offset). ``offset``
#: and ``length`` are in tokens within the shard (``length`` counts the EOS when the piece ends the
#: document); ``doc_token_start`` is where in the document (tokens) the piece begins, non-zero for
#: the continuation of a document from the previous shard; ``epoch`` is 0 on a document's first
#: use in the mixture; ``is_truncated`` marks the one document per source cut to fill its budget.
SPANS_SCHEMA = pa.schema(
    [
        ("shard", pa.int32()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("doc_id", pa.string()),
        ("category", pa.string()),
        ("epoch", pa.int32()),
        ("doc_token_start", pa.int64()),
        ("is_truncated", pa.bool_()),
    ]
)
#: Lineage columns of a packed document (``fct_corpus_documents``' names); absent ones are null.
DOCUMENT_LINEAGE_COLUMNS = (
    "doc_id",
    "category",
    "subcategory",
    "source_table",
    "source_row_id",
    "source_uri",
    "license",
)
DOCUMENTS_SCHEMA = pa.schema(
    [(c, pa.string()) for c in DOCUMENT_LINEAGE_COLUMNS] + [("n_tokens", pa.int64())]
)


def dtype_for_vocab(vocab_size: int) -> str:
    """The narrowest dtype that holds every id of a ``vocab_size`` vocabulary."""
    return "uint16" if vocab_size <= MAX_UINT16_VOCAB else "uint32"


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a packed directory; ``shards`` entries are ``{"path", "n_tokens", "sha256"}``."""

    dtype: str
    eos_id: int
    vocab_size: int
    tokenizer_dir: str | None
    n_tokens: int
    shards: list[dict[str, Any]]
    n_documents: int = 0
    tokens_by_category: dict[str, int] = field(default_factory=dict)
    fingerprint: str | None = None
    #: ``without_replacement`` / ``with_replacement`` for a mixture; None for plain packing
    sampling: str | None = None
    #: per source (category): available/target/selected tokens, documents, epochs
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: sidecar file names: ``{"spans": ..., "documents": ...}``; empty when not written
    lineage: dict[str, str] = field(default_factory=dict)

    @property
    def itemsize(self) -> int:
        """Bytes per token id."""
        return DTYPE_ITEMSIZE[self.dtype]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written, keys in a fixed order."""
        return {
            "format": FORMAT,
            "dtype": self.dtype,
            "eos_id": self.eos_id,
            "vocab_size": self.vocab_size,
            "tokenizer_dir": self.tokenizer_dir,
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "tokens_by_category": self.tokens_by_category,
            "shards": self.shards,
            "fingerprint": self.fingerprint,
            "sampling": self.sampling,
            "sources": self.sources,
            "lineage": self.lineage,
        }


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Plain sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(
    packed_dir: str | os.PathLike[str], *, verify: bool = False, require_shards: bool = False
) -> Manifest:
    """Read and check ``packed_dir/manifest.json``; errors name the offending path.

    ``require_shards`` rejects a manifest that lists no shards (a reader that needs tokens);
    ``verify`` also checks each shard's size and sha256 against the manifest.
    """
    packed_dir = Path(packed_dir)
    path = packed_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"packed shards manifest not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"packed shards manifest {path} is not valid JSON: {e}") from e
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path}: format is {raw.get('format')!r}, expected {FORMAT!r}")
    if raw.get("dtype") not in DTYPE_ITEMSIZE:
        raise ValueError(f"{path}: dtype must be uint16 or uint32, got {raw.get('dtype')!r}")
    if require_shards and not raw.get("shards"):
        raise ValueError(f"{path}: lists no shards")
    manifest = Manifest(
        dtype=raw["dtype"],
        eos_id=int(raw["eos_id"]),
        vocab_size=int(raw["vocab_size"]),
        tokenizer_dir=raw.get("tokenizer_dir"),
        n_tokens=int(raw.get("n_tokens", 0)),
        shards=list(raw.get("shards") or []),
        n_documents=int(raw.get("n_documents", 0)),
        tokens_by_category=dict(raw.get("tokens_by_category") or {}),
        fingerprint=raw.get("fingerprint"),
        sampling=raw.get("sampling"),
        sources=dict(raw.get("sources") or {}),
        lineage=dict(raw.get("lineage") or {}),
    )
    if verify:
        for shard in manifest.shards:
            shard_path = packed_dir / shard["path"]
            if shard_path.stat().st_size != shard["n_tokens"] * manifest.itemsize:
                raise ValueError(f"{shard_path}: size does not match n_tokens {shard['n_tokens']}")
            if _sha256_file(shard_path) != shard["sha256"]:
                raise ValueError(f"{shard_path}: sha256 mismatch")
    return manifest


def _shard_index(manifest: Manifest, shard: str | int) -> int:
    """A shard given as its index, its file name or a path ending in it."""
    if isinstance(shard, int) or str(shard).isdigit():
        i = int(shard)
        if not 0 <= i < len(manifest.shards):
            raise ValueError(f"shard index {i} is out of range: there are {len(manifest.shards)} shards")
        return i
    name = Path(str(shard)).name
    for i, entry in enumerate(manifest.shards):
        if entry["path"] == name:
            return i
    raise ValueError(f"no shard named {name!r} in the manifest ({len(manifest.shards)} shards)")


def locate_token(packed_dir: str | os.PathLike[str], shard: str | int, offset: int) -> dict[str, Any]:
    """The document one token came from: its span row joined with the document's lineage row.

    ``shard`` is an index, a file name or a path; ``offset`` counts tokens from the shard's start.
    The answer adds ``shard_path``, ``token_id`` (read from the shard) and ``token_in_document``
    (the token's position inside its document, EOS being the last).
    """
    packed_dir = Path(packed_dir)
    manifest = read_manifest(packed_dir)
    if not manifest.lineage:
        raise ValueError(f"{packed_dir}: the manifest has no lineage index (packed before it existed)")
    i = _shard_index(manifest, shard)
    entry = manifest.shards[i]
    if not 0 <= offset < entry["n_tokens"]:
        raise ValueError(f"offset {offset} is outside shard {entry['path']} (0..{entry['n_tokens'] - 1})")
    spans = pq.read_table(
        packed_dir / manifest.lineage["spans"], filters=[("shard", "=", i), ("offset", "<=", offset)]
    )
    if spans.num_rows == 0:
        raise ValueError(f"{packed_dir}: no span covers shard {i} offset {offset}")
    row = spans.take([int(pc.index(spans["offset"], pc.max(spans["offset"])).as_py())]).to_pylist()[0]
    if offset >= row["offset"] + row["length"]:
        raise ValueError(f"{packed_dir}: the span index has a gap at shard {i} offset {offset}")
    docs = pq.read_table(packed_dir / manifest.lineage["documents"], filters=[("doc_id", "=", row["doc_id"])])
    lineage = docs.to_pylist()[0] if docs.num_rows else {"doc_id": row["doc_id"]}
    with open(packed_dir / entry["path"], "rb") as fh:
        fh.seek(offset * manifest.itemsize)
        token_id = int.from_bytes(fh.read(manifest.itemsize), "little")
    return {
        **lineage,
        **row,
        "shard_path": entry["path"],
        "token_id": token_id,
        "token_in_document": row["doc_token_start"] + offset - row["offset"],
    }
