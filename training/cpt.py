"""Continual pre-training (stages 1 and 2): next-token loss on packed shards, then export to output_dir/hf.

Stage 1 starts from `model.init="config"` (a fresh model) or a real base model; stage 2 points
`model.init="pretrained"`, `model.name_or_path` at stage 1's `output_dir/hf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training import distributed as D
from training.config import RunConfig
from training.data import PackedBatches, PackedShards
from training.loop import train_loop
from training.metrics import MetricSink, emit
from training.model import count_params, init_model, load_tokenizer, resolve_tokenizer_dir
from training.trainer import export_model, run_stage, seed_everything


def manifest_tokenizer_dir(shards: PackedShards) -> str | None:
    """The manifest's tokenizer_dir; a relative path is taken relative to the shards dir when it exists there."""
    name = shards.manifest.tokenizer_dir
    if not name or Path(name).is_absolute() or Path(name).exists():
        return name
    beside = shards.dir / name
    return str(beside) if beside.exists() else name


def cpt_body(cfg: RunConfig, env: D.DistEnv, sinks: list[MetricSink]) -> dict[str, Any]:
    """The CPT stage in the trainer scaffold: check the shards fit the tokenizer and the model, train
    (resuming when possible), export to output_dir/hf."""
    if not cfg.data.shards_dir:
        raise ValueError("cpt: data.shards_dir is required")
    shards = PackedShards(cfg.data.shards_dir, cfg.data.seq_len, cfg.data.holdout)
    tokenizer = load_tokenizer(resolve_tokenizer_dir(cfg.model, manifest_tokenizer_dir(shards)))
    if shards.manifest.vocab_size > len(tokenizer):
        raise ValueError(
            f"shards in {shards.dir} have vocab_size {shards.manifest.vocab_size} but the tokenizer has "
            f"{len(tokenizer)} tokens: the shards were packed with a different tokenizer"
        )
    model = init_model(cfg.model, tokenizer).to(env.device)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos is not None and cfg.data.seq_len > max_pos:
        raise ValueError(
            f"data.seq_len {cfg.data.seq_len} exceeds the model's max_position_embeddings {max_pos}"
        )
    seed_everything(cfg.seed + env.rank)
    n_params, n_non_emb = count_params(model, non_embedding=False), count_params(model)
    emit(
        sinks,
        "log_text",
        f"cpt: {n_params:,} params ({n_non_emb:,} non-embedding), {shards.n_train:,} train windows",
    )
    data = PackedBatches(shards, cfg.data.seed, env.rank, env.world_size)
    eos = shards.manifest.eos_id if cfg.data.doc_mask else None
    result = train_loop(cfg, model, data, env, sinks, n_non_emb, eos_id=eos)
    hf_dir = export_model(model, tokenizer, cfg.output_dir, env)
    return {**result, "n_params": n_params, "n_params_non_embedding": n_non_emb, "hf_dir": str(hf_dir)}


def train_cpt(cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Run CPT as configured (resuming when possible) and return the summary dict (also written to
    output_dir/summary.json)."""
    return run_stage("cpt", cpt_body, cfg, sinks)
