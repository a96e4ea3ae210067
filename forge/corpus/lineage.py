"""From a token in a packed shard back to the document, and the URL or dataset row, it came from.

The span index beside the shards (:func:`contracts.packed.locate_token`) gives the document; its
lineage columns come from the warehouse's ``fct_corpus_documents`` when a warehouse is given
(the live answer), else from the copy of those columns packed beside the shards (the answer as of
packing, which still holds after the warehouse was rebuilt).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from contracts.packed import DOCUMENT_LINEAGE_COLUMNS, locate_token, read_manifest
from forge.core.warehouse import fetch_all

#: Tokens of context shown on each side of the traced one (inside its document).
CONTEXT_TOKENS = 12


def trace_token(
    packed_dir: str | os.PathLike[str],
    shard: str | int,
    offset: int,
    *,
    warehouse: str | os.PathLike[str] | None = None,
    decode: bool = True,
) -> dict[str, Any]:
    """The document a token belongs to and where that document came from.

    Returns the span's fields (``doc_id``, ``category``, ``epoch``, ``token_in_document``, ...),
    the lineage columns (``subcategory``, ``source_table``, ``source_row_id``, ``source_uri``,
    ``license``) with ``lineage_from`` saying which copy answered, and with ``decode`` the token's
    text and a few tokens of context around it (from the tokenizer the manifest names).
    """
    packed_dir = Path(packed_dir)
    info = locate_token(packed_dir, shard, offset)
    info["lineage_from"] = "packed documents.parquet"
    if warehouse is not None:
        doc_id = str(info["doc_id"]).replace("'", "''")
        cols = ", ".join(DOCUMENT_LINEAGE_COLUMNS)
        rows = fetch_all(warehouse, f"select {cols} from fct_corpus_documents where doc_id = '{doc_id}'")
        if not rows:
            raise LookupError(
                f"{info['doc_id']} is not in fct_corpus_documents of {warehouse}: "
                "the warehouse was rebuilt without it since packing (drop --warehouse for the packed copy)"
            )
        info.update(rows[0])
        info["lineage_from"] = f"fct_corpus_documents in {warehouse}"
    if decode:
        info.update(_decoded(packed_dir, info, offset))
    return info


def _decoded(packed_dir: Path, info: dict[str, Any], offset: int) -> dict[str, Any]:
    manifest = read_manifest(packed_dir)
    tok_dir = manifest.tokenizer_dir
    if not tok_dir or not Path(tok_dir).is_dir():
        return {"token_text": None, "context": None}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    dtype = np.dtype(manifest.dtype).newbyteorder("<")
    shard = manifest.shards[int(info["shard"])]
    data = np.memmap(packed_dir / shard["path"], dtype=dtype, mode="r", shape=(shard["n_tokens"],))
    lo = max(int(info["offset"]), offset - CONTEXT_TOKENS)
    hi = min(int(info["offset"]) + int(info["length"]), offset + CONTEXT_TOKENS + 1)
    token = tok.decode([int(info["token_id"])])
    before, after = tok.decode(data[lo:offset].tolist()), tok.decode(data[offset + 1 : hi].tolist())
    return {"token_text": token, "context": f"{before}⟦{token}⟧{after}"}
