"""Fused projections for training: one matmul for q/k/v and one for gate/up, on the model's own weights.

A Llama block runs five input-side matmuls on the same activations: q, k and v read the attention's
input, gate and up the MLP's. Concatenating the weights of each group turns them into two wider GEMMs
(1024 -> 3072 and 1024 -> 5376 at 350M), which keep the GPU's tiles busier than five narrow ones, and the
backward computes one input gradient per group instead of summing three or two. Under bf16 autocast the
weights are cast from fp32 every step anyway; inside a compiled block the concatenation and that cast are
one kernel, so the fusion moves no extra bytes.

Nothing about the model changes: the parameters stay the HF modules' own (`q_proj.weight`, ...), so state
dicts, checkpoints, exact resume and export are untouched; only the forward of each fused module is
replaced, on the instance. `fuse_projections` fuses a module only when its projections are plain
`nn.Linear` (not float8- or LoRA-wrapped layers, which keep the stock forward) and its class is one whose
forward is known to be the one below (`FUSABLE_ATTENTION`, `FUSABLE_MLP`); `unfuse_projections` undoes it.
tests/training/test_fused.py checks the outputs and gradients equal the stock modules'.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
import torch.nn.functional as F

#: attention classes whose forward is q/k/v -> RoPE -> attention interface -> o (transformers' Llama)
FUSABLE_ATTENTION = frozenset({"LlamaAttention"})
#: MLP classes whose forward is down(act(gate(x)) * up(x))
FUSABLE_MLP = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"})


def _fused_linear(x: torch.Tensor, layers: list[torch.nn.Linear]) -> list[torch.Tensor]:
    """`[layer(x) for layer in layers]` as one matmul over the concatenated weights (and biases)."""
    weight = torch.cat([layer.weight for layer in layers])
    bias = None if layers[0].bias is None else torch.cat([layer.bias for layer in layers])
    return list(F.linear(x, weight, bias).split([layer.out_features for layer in layers], dim=-1))


def _attention_forward(
    self: Any,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    attention_mask: torch.Tensor | None = None,
    past_key_values: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """transformers' LlamaAttention.forward with the three projections as one matmul."""
    family = sys.modules[type(self).__module__]  # the model family's own RoPE and attention registry
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    query, key, value = (
        t.view(hidden_shape).transpose(1, 2)
        for t in _fused_linear(hidden_states, [self.q_proj, self.k_proj, self.v_proj])
    )
    cos, sin = position_embeddings
    query, key = family.apply_rotary_pos_emb(query, key, cos, sin)
    if past_key_values is not None:
        key, value = past_key_values.update(key, value, self.layer_idx)
    interface = family.ALL_ATTENTION_FUNCTIONS.get_interface(
        self.config._attn_implementation, family.eager_attention_forward
    )
    out, weights = interface(
        self,
        query,
        key,
        value,
        attention_mask,
        dropout=0.0 if not self.training else self.attention_dropout,
        scaling=self.scaling,
        **kwargs,
    )
    return self.o_proj(out.reshape(*input_shape, -1).contiguous()), weights


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    gate, up = _fused_linear(x, [self.gate_proj, self.up_proj])
    return self.down_proj(self.act_fn(gate) * up)


def _plain(*layers: Any) -> bool:
    """Plain linear layers (not a float8 / LoRA subclass or wrapper) of one input width, all with or all
    without a bias: what one concatenated matmul can replace."""
    if not all(type(layer) is torch.nn.Linear for layer in layers):
        return False
    return (
        len({layer.in_features for layer in layers}) == 1
        and len({layer.bias is None for layer in layers}) == 1
    )


def fuse_projections(model: torch.nn.Module) -> int:
    """Fuse q/k/v and gate/up of every eligible attention and MLP module of `model` (in place, the
    instances' forward). Returns how many modules were fused; 0 means the model runs as it was."""
    fused = 0
    for module in model.modules():
        name = type(module).__name__
        if name in FUSABLE_ATTENTION and _plain(module.q_proj, module.k_proj, module.v_proj):
            module.forward = types.MethodType(_attention_forward, module)
        elif name in FUSABLE_MLP and _plain(module.gate_proj, module.up_proj):
            module.forward = types.MethodType(_mlp_forward, module)
        else:
            continue
        fused += 1
    return fused


def unfuse_projections(model: torch.nn.Module) -> int:
    """Give every fused module its class's forward back; returns how many there were."""
    restored = 0
    for module in model.modules():
        forward = vars(module).get("forward")
        if getattr(forward, "__func__", None) in (_attention_forward, _mlp_forward):
            del module.forward
            restored += 1
    return restored
