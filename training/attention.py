"""Document masking inside packed sequences: a token attends only to earlier tokens of its own document.

Packed CPT windows concatenate documents separated by EOS (format 5). Plain causal attention lets a token
see the end of the previous document; with `data.doc_mask` it does not. A document runs up to and
including its EOS, so the token after an EOS starts a new document.

Two equivalent mask forms, both passed to the HF model as its `attention_mask` (HF uses a 4D mask /
BlockMask as given): a flex-attention `BlockMask` on CUDA (`attn_implementation="flex_attention"`: the
kernel skips fully masked blocks, so its cost tracks the documents' lengths), and a dense boolean
[B, 1, T, T] mask for SDPA elsewhere (CPU tests; O(T^2) memory, fine for short sequences).
"""

from __future__ import annotations

from typing import Any

import torch


def document_ids(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, T] int32: index of the document each position belongs to (an EOS ends its document)."""
    is_eos = (input_ids == eos_id).to(torch.int32)
    return torch.cumsum(is_eos, dim=1, dtype=torch.int32) - is_eos


def dense_document_mask(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, 1, T, T] bool, True where query t may attend key s: s <= t and same document."""
    doc = document_ids(input_ids, eos_id)
    t = input_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
    same = doc[:, :, None] == doc[:, None, :]
    return (same & causal)[:, None]


def block_document_mask(input_ids: torch.Tensor, eos_id: int) -> Any:
    """The same mask as a flex-attention BlockMask (built on input_ids' device, broadcast over heads)."""
    from torch.nn.attention.flex_attention import create_block_mask

    doc = document_ids(input_ids, eos_id)

    def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
        return (q >= kv) & (doc[b, q] == doc[b, kv])

    b, t = input_ids.shape
    return create_block_mask(mask_mod, B=b, H=None, Q_LEN=t, KV_LEN=t, device=input_ids.device)


def document_mask(input_ids: torch.Tensor, eos_id: int, attn_implementation: str) -> Any:
    """The mask form the model's attention implementation takes."""
    if attn_implementation == "flex_attention":
        return block_document_mask(input_ids, eos_id)
    if attn_implementation == "sdpa":
        return dense_document_mask(input_ids, eos_id)
    raise ValueError(
        f"data.doc_mask needs attn_implementation 'flex_attention' or 'sdpa', got {attn_implementation!r}"
    )
