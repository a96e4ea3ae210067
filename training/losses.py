"""The training objective as one module: backbone -> final hidden states -> chunked linear cross-entropy.

Why not `model(...).logits` + `F.cross_entropy`: at seq 1024 x micro-batch 16 with a 50k vocabulary the
logits are 16k x 50k, 1.6 GB in bf16 and 3.3 GB once upcast to fp32, and autograd keeps them for the
backward. `LinearCrossEntropy` instead walks the tokens in chunks, computes each chunk's logits, loss and
both gradients (w.r.t. the hidden states and the output-head weight) in the forward, and keeps only those
gradients: peak extra memory is one chunk's logits, and the head's matmuls are done once, not recomputed.
The same idea as Liger-Kernel's fused linear cross-entropy, in plain PyTorch.

`CausalLMLoss` wraps a Hugging Face causal LM so that the whole step (backbone + loss) is one module call:
FSDP2's root hooks (which gather the embedding / head / final norm) fire around the whole computation.

The objective is chosen by name in the config (`RunConfig.objective`, built by `build_objective` from
`OBJECTIVES`), so the wrapping code in parallel.py compiles, replicates or shards whatever it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from training.config import RunConfig

# Model families whose logits are exactly `lm_head(final hidden states)` (no bias, scaling or softcapping),
# so the chunked loss gives the same numbers as the model's own forward.
FUSED_LOSS_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def chunk_loss_and_grads(
    hc: torch.Tensor, w: torch.Tensor, yc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk: (sum of CE of `hc @ w.T` vs `yc`, d/d hc, d/d w) with the softmax arithmetic in fp32.
    A plain function so that torch.compile can fuse it (compile_chunk_fn); the autograd.Function below
    stays eager."""
    logits = (hc @ w.t()).float()
    valid = yc != -100
    safe = torch.where(valid, yc, 0)
    lse = torch.logsumexp(logits, dim=-1)
    target = logits.gather(1, safe[:, None]).squeeze(1)
    loss = torch.where(valid, lse - target, 0.0).sum()
    # d(sum of CE)/d logits = softmax - onehot, on valid rows only
    onehot = torch.nn.functional.one_hot(safe, logits.shape[-1]).to(logits.dtype)
    g = ((torch.exp(logits - lse[:, None]) - onehot) * valid[:, None]).to(hc.dtype)
    return loss, g @ w, (g.t() @ hc).float()


_chunk_fn: Any = chunk_loss_and_grads


def compile_chunk_fn(**kwargs: Any) -> None:
    """Use a torch.compile'd `chunk_loss_and_grads` from now on (process-wide; idempotent)."""
    global _chunk_fn
    if _chunk_fn is chunk_loss_and_grads:
        _chunk_fn = torch.compile(chunk_loss_and_grads, **kwargs)


class LinearCrossEntropy(torch.autograd.Function):
    """Sum of cross-entropies of `hidden @ weight.T` against `labels` (ignore_index -100), divided by
    `denom`, with gradients computed chunk by chunk in the forward.

    hidden [N, H] (any float dtype), weight [V, H], labels [N] int64. Matmuls run in `compute_dtype`
    (bf16 on GPU), the softmax / log-sum-exp in fp32.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor,
        denom: torch.Tensor,
        chunk: int,
        compute_dtype: torch.dtype,
    ) -> torch.Tensor:
        h = hidden.detach().to(compute_dtype)
        w = weight.detach().to(compute_dtype)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, h.shape[0], chunk):
            loss, gh, gw = _chunk_fn(h[start : start + chunk], w, labels[start : start + chunk])
            total += loss
            grad_h[start : start + chunk] = gh
            grad_w += gw
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype), denom)
        return total / denom

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad_h, grad_w, denom = ctx.saved_tensors
        scale = grad_out / denom
        return grad_h * scale.to(grad_h.dtype), grad_w * scale.to(grad_w.dtype), None, None, None, None


@torch.compiler.disable  # the Function runs eagerly; its per-chunk maths is compiled (compile_chunk_fn)
def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    chunk: int = 4096,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Mean next-token cross-entropy of `hidden [.., H] @ weight.T` over labels != -100 (NaN if none),
    without materializing all logits. `labels` are aligned with `hidden` (no shift here)."""
    flat_h, flat_y = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    denom = (flat_y != -100).sum().to(torch.float32)
    dtype = compute_dtype or weight.dtype
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return LinearCrossEntropy.apply(flat_h, weight, flat_y, denom, int(chunk), dtype)


def supports_fused_loss(model: torch.nn.Module) -> bool:
    """True when `model`'s logits are exactly its bias-free output head applied to the decoder output."""
    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return (
        getattr(config, "model_type", None) in FUSED_LOSS_MODEL_TYPES
        and isinstance(head, torch.nn.Linear)
        and head.bias is None
        and hasattr(model, "get_decoder")
    )


class CausalLMLoss(torch.nn.Module):
    """`forward(input_ids, labels, attention_mask=None) -> mean loss` for a HF causal LM (peft-wrapped too).

    `chunk_tokens > 0` and a supported family: decoder -> `linear_cross_entropy` (no full logits).
    Otherwise the model's logits and `F.cross_entropy` in fp32. `attention_mask` may be a 2D padding mask,
    a 4D boolean mask or a flex-attention BlockMask (document masking, see `attention.py`).
    """

    def __init__(
        self, model: torch.nn.Module, chunk_tokens: int = 4096, compute_dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens
        self.compute_dtype = compute_dtype
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.fused = chunk_tokens > 0 and supports_fused_loss(base)
        self._base = [base]  # a list, so the base model is not registered twice as a submodule

    def compile_loss(self, **kwargs: Any) -> None:
        """torch.compile the chunked loss's per-chunk maths (fuses its fp32 softmax / gradient passes)."""
        compile_chunk_fn(**kwargs)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: Any = None
    ) -> torch.Tensor:
        if not self.fused:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        base = self._base[0]
        hidden = base.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        weight = base.get_output_embeddings().weight
        dtype = self.compute_dtype or (
            torch.get_autocast_dtype(hidden.device.type)
            if torch.is_autocast_enabled(hidden.device.type)
            else weight.dtype
        )
        return linear_cross_entropy(hidden, weight, labels, self.chunk_tokens, dtype)


def causal_lm(model: torch.nn.Module, cfg: RunConfig) -> CausalLMLoss:
    """Next-token cross-entropy over the labels that are not -100, chunked per `perf.loss_chunk_tokens`."""
    return CausalLMLoss(model, chunk_tokens=cfg.perf.loss_chunk_tokens)


# Objectives by name (`RunConfig.objective`). Each builds a module `forward(input_ids, labels,
# attention_mask=None) -> mean loss` that holds the model as `.model` and has `compile_loss(**kwargs)`.
OBJECTIVES: dict[str, Callable[[torch.nn.Module, RunConfig], torch.nn.Module]] = {"causal_lm": causal_lm}


def build_objective(cfg: RunConfig, model: torch.nn.Module) -> torch.nn.Module:
    """The loss module `cfg.objective` names, around `model` (on its device, not yet wrapped)."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {cfg.objective!r}; known: {sorted(OBJECTIVES)}")
    return OBJECTIVES[cfg.objective](model, cfg)
