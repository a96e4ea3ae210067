"""The init stage: build the base model from `cfg.model` and the tokenizer, export it to output_dir/hf.

No training: the base model is the parent the CPT stages start from. It runs in the trainer scaffold
like the others, so its parameter counts reach the same sinks and summary.json.
"""

from __future__ import annotations

from typing import Any

from training import distributed as D
from training.config import RunConfig
from training.cpt import manifest_tokenizer_dir
from training.data import PackedShards
from training.metrics import MetricSink
from training.model import count_params, init_model, load_tokenizer, resolve_tokenizer_dir
from training.trainer import export_model


def init_body(cfg: RunConfig, env: D.DistEnv, sinks: list[MetricSink]) -> dict[str, Any]:
    """Initialize (seeded by the scaffold, the same on every rank) and export on rank 0. The tokenizer is
    `model.tokenizer_dir`, else that of the shards in `data.shards_dir` when given."""
    fallback = None
    if cfg.model.tokenizer_dir is None and cfg.data.shards_dir:
        fallback = manifest_tokenizer_dir(PackedShards(cfg.data.shards_dir, cfg.data.seq_len, 0))
    tokenizer = load_tokenizer(resolve_tokenizer_dir(cfg.model, fallback))
    model = init_model(cfg.model, tokenizer)
    hf_dir = export_model(model, tokenizer, cfg.output_dir, env)
    return {
        "hf_dir": str(hf_dir),
        "n_params": count_params(model, non_embedding=False),
        "n_params_non_embedding": count_params(model),
        "vocab_size": len(tokenizer),
    }
