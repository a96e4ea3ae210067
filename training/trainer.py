"""The one scaffold every stage runs in: init, CPT and SFT differ only in their body.

`run_stage` owns what each entry point used to repeat: join the process group (torchrun) and pick the
device, create the output directory and the metric sinks (rank 0), log the config first (so a run that
fails early still shows it), seed, run the body, then write the summary and close the sinks in
`finally` with the exception, if any, so MLflow marks a failed run FAILED. A body gets
`(cfg, env, sinks)`, builds its model and data, trains or exports, and returns its summary numbers.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.io import atomic_write_text
from training import distributed as D
from training.checkpoint import export_hf
from training.config import RunConfig, to_dict
from training.metrics import JSONLSink, MetricSink, MlflowSink, close_sinks, emit
from training.parallel import gathered_model_state, is_sharded
from training.plots import LOSS_CURVE, plot_loss_curve

# A stage's body: (config, process env, rank-0 sinks) -> its summary entries (strict JSON after json_safe).
StageBody = Callable[[RunConfig, D.DistEnv, list[MetricSink]], dict[str, Any]]


def run_stage(
    command: str, body: StageBody, cfg: RunConfig, sinks: Sequence[MetricSink] = ()
) -> dict[str, Any]:
    """Run `body` inside the scaffold and return the stage's summary (also output_dir/summary.json).

    The given sinks are used on rank 0 only and closed at the end, with the exception on failure. Every
    rank starts from `cfg.seed`, so a freshly initialized model is the same on all of them; a body that
    trains reseeds per rank (`seed_everything(cfg.seed + env.rank)`) once its model exists.
    """
    t0 = time.perf_counter()
    env = D.setup(cfg.device)
    own: list[MetricSink] = []
    error: BaseException | None = None
    try:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        own = make_sinks(cfg, sinks, env)
        emit(own, "log_params", to_dict(cfg))
        seed_everything(cfg.seed)
        result = body(cfg, env, own)
        summary = {
            "command": command,
            "name": cfg.name,
            **result,
            "wall_time_s": time.perf_counter() - t0,
            "world_size": env.world_size,
            "device": str(env.device),
            "output_dir": str(cfg.output_dir),
        }
        return finish(cfg, summary, own, env)
    except BaseException as e:
        error = e
        raise
    finally:
        close_sinks(own, error)
        D.teardown(env)


def make_sinks(cfg: RunConfig, extra: Sequence[MetricSink], env: D.DistEnv) -> list[MetricSink]:
    """Rank 0: metrics.jsonl in output_dir, MLflow when configured, then the caller's sinks. Other ranks: none."""
    if not env.is_main:
        return []
    sinks: list[MetricSink] = [JSONLSink(Path(cfg.output_dir) / "metrics.jsonl")]
    if cfg.mlflow is not None:
        sinks.append(MlflowSink(cfg.mlflow))
    return sinks + list(extra)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def export_model(
    model: torch.nn.Module,
    tokenizer: Any,
    output_dir: str | Path,
    env: D.DistEnv,
    adapter_dir: Path | None = None,
) -> Path:
    """Export the trained model to output_dir/hf on rank 0; returns that path on every rank.

    A collective under FSDP (the full weights are gathered from every rank first). With `adapter_dir`
    (LoRA) the adapter is saved there, then merged into the base for the export. Ranks meet at a barrier,
    so no rank moves on before the export exists.
    """
    hf_dir = Path(output_dir) / "hf"
    gathered = gathered_model_state(model) if is_sharded(model) else None
    if env.is_main:
        if adapter_dir is not None:
            export_hf(model, tokenizer, adapter_dir)
            model = model.merge_and_unload()
        export_hf(model, tokenizer, hf_dir, state_dict=gathered)
    D.barrier(env)
    return hf_dir


def json_safe(value: Any) -> Any:
    """NaN/inf -> None so the summary is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def finish(
    cfg: RunConfig, summary: dict[str, Any], sinks: list[MetricSink], env: D.DistEnv
) -> dict[str, Any]:
    """Rank 0 writes output_dir/summary.json and config.json (atomically), logs the final numbers and hands
    the summary, config and metrics.jsonl to the sinks as artifacts; every rank returns the strict-JSON
    summary."""
    summary = json_safe(summary)
    if env.is_main:
        out = Path(cfg.output_dir)
        for name, payload in (("summary.json", summary), ("config.json", to_dict(cfg))):
            atomic_write_text(out / name, json.dumps(payload, indent=2) + "\n")
        numbers = {
            k if k.startswith("final_") else f"final_{k}": v
            for k, v in summary.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        emit(sinks, "log_metrics", int(summary.get("steps", 0)), numbers)
        for name in ("summary.json", "config.json", "metrics.jsonl"):
            emit(sinks, "log_artifacts", out / name)
        # the picture people look at first (MLflow artifact, Dagster metadata): loss against steps
        curve = plot_loss_curve(out / "metrics.jsonl", out / LOSS_CURVE, f"{cfg.name}: training loss")
        if curve is not None:
            emit(sinks, "log_artifacts", curve)
    return summary
