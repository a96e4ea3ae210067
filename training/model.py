"""Model and tokenizer loading: a fresh Llama from a config, or any causal LM from a local dir / hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from training.config import ModelConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path: str | Path) -> Any:
    """A tokenizer directory (``forge.corpus.tokenizer`` layout) or hub id; a missing local dir is a clear error, not a hub lookup."""
    p = Path(path)
    if (p.is_absolute() or str(path).startswith(".")) and not p.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {p}")
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        raise ValueError(
            f"tokenizer {path} has no pad token; the project's tokenizers require pad_token = <|pad|>"
        )
    return tok


def resolve_tokenizer_dir(model_cfg: ModelConfig, fallback: str | None = None) -> str:
    """Where the tokenizer comes from: explicit `tokenizer_dir`, the pretrained model's dir, or `fallback`
    (the shards manifest's `tokenizer_dir` for CPT)."""
    if model_cfg.tokenizer_dir:
        return model_cfg.tokenizer_dir
    if model_cfg.init == "pretrained" and model_cfg.name_or_path:
        return model_cfg.name_or_path
    if fallback:
        return fallback
    raise ValueError(
        "no tokenizer: set model.tokenizer_dir (or use a shards manifest that names tokenizer_dir)"
    )


def apply_attn_implementation(model: PreTrainedModel, requested: str) -> str:
    """Point the model at its attention kernel: "sdpa" means our packed SDPA kernel (FlashAttention when
    unmasked, flex-attention for document masks; attention.py) where the family allows it, else HF's
    own. Returns the kernel's name (set on `model.config._attn_implementation`, read at every forward)."""
    from training.attention import register_packed_sdpa, supports_packed_sdpa

    name = requested
    if requested == "sdpa" and supports_packed_sdpa(model.config):
        name = register_packed_sdpa()
    model.config._attn_implementation = name
    return name


def init_model(
    model_cfg: ModelConfig, tokenizer: Any, attn_implementation: str | None = None
) -> PreTrainedModel:
    """Build the model to train.

    `init="config"`: a randomly initialised LlamaForCausalLM with the configured dims, vocabulary size
    = len(tokenizer) and the tokenizer's pad/eos/bos ids (call `torch.manual_seed` first for a
    reproducible init). `init="pretrained"`: `AutoModelForCausalLM.from_pretrained(name_or_path)`,
    with the token embeddings grown when the tokenizer has more tokens than the model.
    """
    dtype = _DTYPES[model_cfg.torch_dtype]
    attn = model_cfg.attn_implementation
    if model_cfg.init == "config":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=model_cfg.hidden_size,
            intermediate_size=model_cfg.intermediate_size,
            num_hidden_layers=model_cfg.num_hidden_layers,
            num_attention_heads=model_cfg.num_attention_heads,
            num_key_value_heads=model_cfg.num_key_value_heads,
            max_position_embeddings=model_cfg.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": float(model_cfg.rope_theta)},
            tie_word_embeddings=model_cfg.tie_word_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id,
        )
        config._attn_implementation = "sdpa" if attn == "sdpa" else attn
        model = LlamaForCausalLM(config).to(dtype)
        apply_attn_implementation(model, attn)
        return model
    if model_cfg.init != "pretrained" or not model_cfg.name_or_path:
        raise ValueError(f"model: init={model_cfg.init!r} needs name_or_path when 'pretrained'")
    path = model_cfg.name_or_path
    if Path(path).is_absolute() and not Path(path).is_dir():
        raise FileNotFoundError(f"pretrained model directory not found: {path}")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    apply_attn_implementation(model, attn)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def count_params(model: torch.nn.Module, non_embedding: bool = True) -> int:
    """Number of parameters (shared/tied tensors counted once). With `non_embedding`, the input token
    embedding is left out (Kaplan et al.'s N, used for 6*N*D FLOPs); an untied output head is kept."""
    total = sum(p.numel() for p in model.parameters())  # parameters() already de-duplicates tied weights
    if non_embedding:
        emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if emb is not None:
            total -= emb.weight.numel()
    return total
