"""Continual pre-training (stages 1 and 2): next-token loss on packed shards, then export to output_dir/hf.

Stage 1 starts from `model.init="config"` (a fresh model) or a real base model; stage 2 points
`model.init="pretrained"`, `model.name_or_path` at stage 1's `output_dir/hf`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training import distributed as D
from training.checkpoint import export_hf
from training.config import RunConfig, to_dict
from training.data import PackedBatches, PackedShards
from training.loop import close_sinks, emit, finish, make_sinks, seed_everything, train_loop
from training.metrics import MetricSink
from training.model import (
    count_params,
    init_model,
    load_tokenizer,
    resolve_tokenizer_dir,
)
from training.parallel import gathered_model_state, is_sharded


def manifest_tokenizer_dir(shards: PackedShards) -> str | None:
    """The manifest's tokenizer_dir; a relative path is taken relative to the shards dir when it exists there."""
    name = shards.manifest.tokenizer_dir
    if not name or Path(name).is_absolute() or Path(name).exists():
        return name
    beside = shards.dir / name
    return str(beside) if beside.exists() else name


def train_cpt(cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Run CPT as configured (resuming when possible) and return the summary dict (also written to
    output_dir/summary.json). The given sinks are used on rank 0 only and closed at the end."""
    t0 = time.perf_counter()
    env = D.setup(cfg.device)
    own: list[MetricSink] = []
    error: BaseException | None = None
    try:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        own = make_sinks(cfg, sinks, env)
        emit(own, "log_params", to_dict(cfg))  # first, so a run that fails early still shows its config
        if not cfg.data.shards_dir:
            raise ValueError("cpt: data.shards_dir is required")
        shards = PackedShards(cfg.data.shards_dir, cfg.data.seq_len, cfg.data.holdout)
        tokenizer = load_tokenizer(resolve_tokenizer_dir(cfg.model, manifest_tokenizer_dir(shards)))
        if shards.manifest.vocab_size > len(tokenizer):
            raise ValueError(
                f"shards in {shards.dir} have vocab_size {shards.manifest.vocab_size} but the tokenizer has "
                f"{len(tokenizer)} tokens: the shards were packed with a different tokenizer"
            )
        seed_everything(cfg.seed)  # same init on every rank
        model = init_model(cfg.model, tokenizer).to(env.device)
        max_pos = getattr(model.config, "max_position_embeddings", None)
        if max_pos is not None and cfg.data.seq_len > max_pos:
            raise ValueError(
                f"data.seq_len {cfg.data.seq_len} exceeds the model's max_position_embeddings {max_pos}"
            )
        seed_everything(cfg.seed + env.rank)
        n_params, n_non_emb = count_params(model, non_embedding=False), count_params(model)
        emit(
            own,
            "log_text",
            f"cpt: {n_params:,} params ({n_non_emb:,} non-embedding), {shards.n_train:,} train windows",
        )
        data = PackedBatches(shards, cfg.data.seed, env.rank, env.world_size)
        eos = shards.manifest.eos_id if cfg.data.doc_mask else None
        result = train_loop(cfg, model, data, env, own, n_non_emb, eos_id=eos)
        hf_dir = Path(cfg.output_dir) / "hf"
        gathered = gathered_model_state(model) if is_sharded(model) else None  # collective under FSDP
        if env.is_main:
            export_hf(model, tokenizer, hf_dir, state_dict=gathered)
        D.barrier(env)
        wall = time.perf_counter() - t0
        summary = {
            "command": "cpt",
            "name": cfg.name,
            **result,
            "wall_time_s": wall,
            "tokens_per_s": result["tokens_this_run"] / max(result["train_wall_time_s"], 1e-9),
            "n_params": n_params,
            "n_params_non_embedding": n_non_emb,
            "world_size": env.world_size,
            "device": str(env.device),
            "output_dir": str(cfg.output_dir),
            "hf_dir": str(hf_dir),
        }
        return finish(cfg, summary, own, env)
    except BaseException as e:
        error = e
        raise
    finally:
        close_sinks(own, error)
        D.teardown(env)
