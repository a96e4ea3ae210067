"""The packed-shard format for continual pre-training: written by ``forge.corpus.packing``, read by
``training.data``.

A packed directory holds ``shard_NNNNN.bin`` files of raw little-endian token ids (``uint16`` when
the vocabulary fits, else ``uint32``), each document followed by the EOS id, documents running on
from one shard into the next in manifest order, and ``manifest.json``::

    {"format": "hephaestus-packed-v1", "dtype": "uint16", "eos_id": 0, "vocab_size": 8192,
     "tokenizer_dir": "...", "n_tokens": 123, "n_documents": 4, "tokens_by_category": {...},
     "shards": [{"path": "shard_00000.bin", "n_tokens": 123, "sha256": "..."}], "fingerprint": "..."}

``n_tokens`` counts ids (EOS included); shard sizes are ``n_tokens * itemsize`` bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "hephaestus-packed-v1"
MANIFEST_NAME = "manifest.json"
#: Token id dtypes and their size in bytes (numpy names; little-endian on disk).
DTYPE_ITEMSIZE: dict[str, int] = {"uint16": 2, "uint32": 4}
MAX_UINT16_VOCAB = 65535


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
    )
    if verify:
        for shard in manifest.shards:
            shard_path = packed_dir / shard["path"]
            if shard_path.stat().st_size != shard["n_tokens"] * manifest.itemsize:
                raise ValueError(f"{shard_path}: size does not match n_tokens {shard['n_tokens']}")
            if _sha256_file(shard_path) != shard["sha256"]:
                raise ValueError(f"{shard_path}: sha256 mismatch")
    return manifest
