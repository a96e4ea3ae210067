"""Training library: model init, packed-shard CPT, LoRA/full SFT, checkpoints, metrics sinks.

Plain PyTorch / transformers / peft / mlflow; no orchestrator. Entry points: `training.run(command, cfg,
sinks)` for callers in Python (the Dagster Pipes wrapper), `python -m training {init,cpt,sft} --config
FILE` (also under `torchrun`). Heavy imports happen inside `run`, so importing the package is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from training.config import RunConfig, debug_config, load_config, to_dict

if TYPE_CHECKING:
    from training.metrics import MetricSink

COMMANDS = ("init", "cpt", "sft")

__all__ = ["COMMANDS", "RunConfig", "debug_config", "init_base", "load_config", "run", "to_dict"]


def init_base(cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Create the base model from `cfg.model` + tokenizer and export it to output_dir/hf (no training)."""
    import time
    from pathlib import Path

    from training.checkpoint import export_hf
    from training.cpt import manifest_tokenizer_dir
    from training.data import PackedShards
    from training.loop import seed_everything
    from training.model import count_params, init_model, load_tokenizer, resolve_tokenizer_dir

    t0 = time.perf_counter()
    fallback = None
    if cfg.model.tokenizer_dir is None and cfg.data.shards_dir:
        fallback = manifest_tokenizer_dir(PackedShards(cfg.data.shards_dir, cfg.data.seq_len, 0))
    tokenizer = load_tokenizer(resolve_tokenizer_dir(cfg.model, fallback))
    seed_everything(cfg.seed)
    model = init_model(cfg.model, tokenizer)
    hf_dir = export_hf(model, tokenizer, Path(cfg.output_dir) / "hf")
    summary = {
        "command": "init",
        "name": cfg.name,
        "hf_dir": str(hf_dir),
        "n_params": count_params(model, non_embedding=False),
        "n_params_non_embedding": count_params(model),
        "vocab_size": len(tokenizer),
        "wall_time_s": time.perf_counter() - t0,
    }
    import os

    import torch

    from training import distributed as D
    from training.loop import close_sinks, make_sinks

    # init runs in one process; under torchrun only rank 0 logs
    env = D.DistEnv(
        rank=int(os.environ.get("RANK", "0")), world_size=1, local_rank=0, device=torch.device("cpu")
    )
    own = make_sinks(cfg, list(sinks), env)
    try:
        for sink in own:
            sink.log_params(to_dict(cfg))
            sink.log_metrics(0, {k: v for k, v in summary.items() if isinstance(v, int | float)})
    except BaseException as e:
        close_sinks(own, e)
        raise
    close_sinks(own, None)
    return summary


def run(command: str, cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Run one stage: "init" (export a fresh base model), "cpt" (continual pre-training) or "sft".

    Returns the stage's summary dict (strict JSON). Sinks receive metrics on rank 0 and are closed at
    the end (with the exception on failure). Raises on any failure.
    """
    if command == "init":
        return init_base(cfg, sinks)
    if command == "cpt":
        from training.cpt import train_cpt

        return train_cpt(cfg, sinks)
    if command == "sft":
        from training.sft import train_sft

        return train_sft(cfg, sinks)
    raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
