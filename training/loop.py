"""The training loop shared by CPT and SFT: one readable loop over optimizer steps.

Per step: set the LR from the schedule, run `grad_accum_steps` micro-batches (DDP gradient sync only
on the last), check the loss is finite, clip, step, then log / eval / checkpoint when due. The data
source is any object with `next_batch(n)`, `eval_batches(n, max)`, `state()` and `load_state(s)`.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from training import distributed as D
from training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.config import RunConfig, to_dict
from training.metrics import JSONLSink, MetricSink, MlflowSink, memory_mib, mfu, peak_flops
from training.schedule import lr_at


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the last good checkpoint to resume from."""


class BatchSource(Protocol):
    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]: ...
    def eval_batches(self, batch_size: int, max_batches: int) -> list[dict[str, torch.Tensor]]: ...
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...


def make_sinks(
    cfg: RunConfig, extra: list[MetricSink] | tuple[MetricSink, ...], env: D.DistEnv
) -> list[MetricSink]:
    """Rank 0: metrics.jsonl in output_dir, MLflow when configured, then the caller's sinks. Other ranks: none."""
    if not env.is_main:
        return []
    sinks: list[MetricSink] = [JSONLSink(Path(cfg.output_dir) / "metrics.jsonl")]
    if cfg.mlflow is not None:
        sinks.append(MlflowSink(cfg.mlflow))
    return sinks + list(extra)


def close_sinks(sinks: list[MetricSink], error: BaseException | None) -> None:
    """Close every sink even if one fails to close (the first close failure is re-raised after)."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.close(error)
        except Exception as e:  # noqa: BLE001 - keep closing the others
            failure = failure or e
    if failure is not None and error is None:
        raise failure


def emit(sinks: list[MetricSink], method: str, *args: Any) -> None:
    for sink in sinks:
        getattr(sink, method)(*args)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp32 master weights); full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100. `labels` are already aligned
    with `input_ids` (labels[t] is the target after input_ids[t]), so no shift happens here."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens processed by a batch: non-padding input positions."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], env: D.DistEnv) -> float:
    """Mean loss over the held-out batches of all ranks (each batch weighted equally); NaN if there are none."""
    was_training = model.training
    model.eval()
    total = torch.zeros(2, device=env.device, dtype=torch.float64)
    for batch in batches:
        batch = {k: v.to(env.device) for k, v in batch.items()}
        with autocast(env.device):
            total[0] += compute_loss(model, batch).double()
        total[1] += 1
    D.all_reduce_sum(total, env)
    model.train(was_training)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over trainable parameters; weight decay only on matrices (not norms/biases), as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), fused=device.type == "cuda" or None
    )


def train_loop(
    cfg: RunConfig,
    model: torch.nn.Module,
    data: BatchSource,
    env: D.DistEnv,
    sinks: list[MetricSink],
    n_params_non_embedding: int,
) -> dict[str, Any]:
    """Train `model` (on env.device, unwrapped) to `cfg.schedule.max_steps`, resuming from the latest
    checkpoint in output_dir when `cfg.resume`. Returns loss/step/token/time numbers for the summary."""
    sched, out_dir = cfg.schedule, Path(cfg.output_dir)
    if env.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul left outside autocast
    optimizer = build_optimizer(model, cfg, env.device)
    step, tokens_seen, resumed_from = 0, 0, None
    last_loss, last_eval = math.nan, math.nan
    last_ckpt = latest_checkpoint(out_dir) if cfg.resume else None
    if last_ckpt is not None:
        state = load_checkpoint(last_ckpt, model, optimizer)
        step, tokens_seen, resumed_from = int(state["step"]), int(state["tokens_seen"]), str(last_ckpt)
        last_loss = float(state["extra"].get("loss", math.nan))
        last_eval = float(state["extra"].get("eval_loss", math.nan))
        data.load_state(state["data"])
        if len(state["rng"]) == env.world_size:
            set_rng_state(state["rng"][env.rank])
        emit(sinks, "log_text", f"resumed from {last_ckpt} at step {step}")
    train_model: torch.nn.Module = model
    if cfg.compile:
        train_model = torch.compile(train_model)
    if env.enabled:
        ids = [env.local_rank] if env.device.type == "cuda" else None
        train_model = DistributedDataParallel(train_model, device_ids=ids)
    peak = peak_flops(env.device, cfg.peak_flops)
    tokens_at_start = tokens_seen
    config_dict = to_dict(cfg)
    t_start = time.perf_counter()
    train_model.train()
    while step < sched.max_steps:
        t0 = time.perf_counter()
        lr = lr_at(
            step,
            lr=cfg.optim.lr,
            min_lr=cfg.optim.min_lr,
            warmup_steps=cfg.optim.warmup_steps,
            max_steps=sched.max_steps,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        stats = torch.zeros(2, device=env.device, dtype=torch.float64)  # [sum of micro losses, tokens]
        for micro in range(sched.grad_accum_steps):
            batch = {
                k: v.to(env.device, non_blocking=True)
                for k, v in data.next_batch(sched.micro_batch_size).items()
            }
            last_micro = micro == sched.grad_accum_steps - 1
            sync = contextlib.nullcontext() if (last_micro or not env.enabled) else train_model.no_sync()
            with sync:
                with autocast(env.device):
                    loss = compute_loss(train_model, batch)
                (loss / sched.grad_accum_steps).backward()
            stats[0] += loss.detach().double()
            stats[1] += batch_tokens(batch)
        D.all_reduce_sum(stats, env)
        step_loss = float(stats[0]) / (sched.grad_accum_steps * env.world_size)
        if not math.isfinite(step_loss):
            where = latest_checkpoint(out_dir)
            raise NonFiniteLossError(
                f"loss is {step_loss} at step {step + 1}; weights were not updated. Last good checkpoint: "
                f"{where if where else 'none (no checkpoint written yet)'}. Lower optim.lr or check the data, "
                "then rerun with resume=true."
            )
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_tokens = int(stats[1])
        tokens_seen += step_tokens
        last_loss = step_loss
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        dt = time.perf_counter() - t0
        if step % sched.log_every == 0 or step == sched.max_steps:
            tps = step_tokens / dt if dt > 0 else 0.0
            metrics = {
                "loss": step_loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tps,
                "tokens_seen": tokens_seen,
                "mfu": mfu(n_params_non_embedding, tps, peak, env.world_size),
                "memory_mib": memory_mib(env.device),
                "step_time_s": dt,
            }
            emit(sinks, "log_metrics", step, metrics)
        if sched.eval_every > 0 and (step % sched.eval_every == 0 or step == sched.max_steps):
            last_eval = evaluate(model, data.eval_batches(sched.micro_batch_size, sched.eval_batches), env)
            emit(sinks, "log_metrics", step, {"eval_loss": last_eval})
        if (sched.checkpoint_every > 0 and step % sched.checkpoint_every == 0) or step == sched.max_steps:
            rngs = D.gather_objects(rng_state(), env)
            if env.is_main:
                save_checkpoint(
                    out_dir, step, model, optimizer, data_state=data.state(), tokens_seen=tokens_seen,
                    config=config_dict, rng=rngs, keep_last=sched.keep_checkpoints,
                    extra={"loss": last_loss, "eval_loss": last_eval},
                )  # fmt: skip
            D.barrier(env)
    return {
        "final_loss": last_loss,
        "final_eval_loss": last_eval,
        "steps": step,
        "tokens_seen": tokens_seen,
        "tokens_this_run": tokens_seen - tokens_at_start,
        "train_wall_time_s": time.perf_counter() - t_start,
        "resumed_from": resumed_from,
        "last_checkpoint": str(latest_checkpoint(out_dir)) if env.is_main else None,
    }


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    """Rank 0 writes output_dir/summary.json (atomically), logs the final numbers and hands the summary,
    config and metrics.jsonl to the sinks as artifacts; every rank returns the strict-JSON summary."""
    import json
    import os

    summary = json_safe(summary)
    if env.is_main:
        out = Path(cfg.output_dir)
        for name, payload in (("summary.json", summary), ("config.json", to_dict(cfg))):
            tmp = out / f".{name}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
            os.replace(tmp, out / name)
        numbers = {
            k if k.startswith("final_") else f"final_{k}": v
            for k, v in summary.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        emit(sinks, "log_metrics", int(summary.get("steps", 0)), numbers)
        for name in ("summary.json", "config.json", "metrics.jsonl"):
            emit(sinks, "log_artifacts", out / name)
    return summary
