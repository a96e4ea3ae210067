"""Document masking inside packed sequences: a token attends only to earlier tokens of its own document.

Packed CPT windows concatenate documents separated by EOS (``contracts.packed``). Plain causal attention lets a token
see the end of the previous document; with `data.doc_mask` it does not. A document runs up to and
including its EOS, so the token after an EOS starts a new document.

Two equivalent mask forms, both passed to the HF model as its `attention_mask` (HF uses a 4D mask /
BlockMask as given): a flex-attention `BlockMask` on CUDA (the kernel skips fully masked blocks, so its
cost tracks the documents' lengths), and a dense boolean [B, 1, T, T] mask for SDPA elsewhere (CPU
tests; O(T^2) memory, fine for short sequences).

`packed_attention` is the attention kernel we register with transformers (`PACKED_SDPA`) for the Llama
family. Why: with no mask, HF's own "sdpa" path builds a dense causal mask whenever it runs under
torch.compile (torch < 2.14), and SDPA with an explicit mask cannot use FlashAttention. Ours calls SDPA
with `is_causal=True` (FlashAttention) when there is no mask, flex-attention for a BlockMask, and SDPA
with the mask for a dense one. A 2D padding mask never reaches it (HF drops it for custom kernels):
fine for our right-padded SFT batches, where causal attention never looks at the padding after a row.
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


PACKED_SDPA = "packed_sdpa"
# Families whose attention is plain causal (+ optional GQA): no sliding window, softcapping or sinks.
PACKED_SDPA_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_compiled_flex: Any = None


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """HF attention-interface kernel: q [B, H, T, D], k/v [B, KV, T, D] -> ([B, T, H, D], None)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    gqa = query.shape[1] != key.shape[1]
    if isinstance(attention_mask, BlockMask):
        fn = flex_attention
        if not torch.compiler.is_compiling():  # eager flex-attention is a slow reference implementation
            _compiled_flex = _compiled_flex or torch.compile(flex_attention)
            fn = _compiled_flex
        out = fn(query, key, value, block_mask=attention_mask, scale=scaling, enable_gqa=gqa)
    else:
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout if module.training else 0.0,
            is_causal=attention_mask is None, scale=scaling, enable_gqa=gqa,
        )  # fmt: skip
    return out.transpose(1, 2).contiguous(), None


def register_packed_sdpa() -> str:
    """Register `packed_attention` with transformers under PACKED_SDPA (idempotent); returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_attention)
    return PACKED_SDPA


def supports_packed_sdpa(config: Any) -> bool:
    return getattr(config, "model_type", None) in PACKED_SDPA_MODEL_TYPES and not getattr(
        config, "use_sliding_window", bool(getattr(config, "sliding_window", None))
    )


def document_mask(input_ids: torch.Tensor, eos_id: int, attn_implementation: str) -> Any:
    """The mask form the model's attention implementation takes (ours: BlockMask on CUDA, dense elsewhere)."""
    if attn_implementation == "flex_attention" or (
        attn_implementation == PACKED_SDPA and input_ids.device.type == "cuda"
    ):
        return block_document_mask(input_ids, eos_id)
    if attn_implementation in ("sdpa", PACKED_SDPA):
        return dense_document_mask(input_ids, eos_id)
    raise ValueError(
        f"data.doc_mask needs attn_implementation 'sdpa' or 'flex_attention', got {attn_implementation!r}"
    )
