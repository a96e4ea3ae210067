"""The training loop shared by CPT and SFT: one readable loop over optimizer steps.

Per step: set the LR from the schedule, run `grad_accum_steps` micro-batches (gradient sync only on
the last), check the loss is finite, clip, step, then log / eval / checkpoint when due. The data
source is any object with `next_batch(n)`, `eval_batches(n, max)`, `state()` and `load_state(s)`; a
background Prefetcher reads ahead of it. The objective is the loss module the config names
(losses.py); model wrapping (compile / DDP / FSDP2) is in parallel.py; the setup, sinks and summary
around a stage are in trainer.py. Each phase of a step is a `record_function` range (`train.data`,
`train.forward`, `train.backward`, `train.clip`, `train.optimizer`, `train.read`, `train.eval`,
`train.checkpoint`), so a torch profiler trace shows where the GPU waits for the host
(bench/kernel_breakdown.py: idle_by_phase).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.profiler import record_function

from training import distributed as D
from training import parallel as P
from training.attention import document_mask
from training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.config import RunConfig, to_dict
from training.losses import build_objective
from training.metrics import MetricSink, emit, memory_mib, mfu, peak_flops
from training.prefetch import Prefetcher
from training.schedule import lr_at


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the last good checkpoint to resume from."""


class BatchSource(Protocol):
    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]: ...
    def eval_batches(self, batch_size: int, max_batches: int) -> list[dict[str, torch.Tensor]]: ...
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp32 master weights); full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The objective's mean loss on one batch. `model` is the objective (losses.build_objective, possibly
    compiled / DDP- / FSDP-wrapped). `labels` are already aligned with `input_ids` (labels[t] is the target
    after input_ids[t]), so no shift happens here."""
    return model(
        input_ids=batch["input_ids"], labels=batch["labels"], attention_mask=batch.get("attention_mask")
    )


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens processed by a batch: non-padding input positions. Call it on the host copy (no GPU sync)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def to_device(
    batch: dict[str, torch.Tensor], env: D.DistEnv, eos_id: int | None, attn: str
) -> dict[str, torch.Tensor]:
    """Copy a host batch to the device (asynchronously from pinned memory) and, for document masking,
    replace the attention mask by the EOS-derived document mask."""
    out = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
    if eos_id is not None:
        out["attention_mask"] = document_mask(out["input_ids"], eos_id, attn)
    return out


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    env: D.DistEnv,
    eos_id: int | None = None,
    attn: str = "sdpa",
) -> float:
    """Mean loss over the held-out batches of all ranks (each batch weighted equally); NaN if there are none."""
    was_training = model.training
    model.eval()
    total = torch.zeros(2, device=env.device, dtype=torch.float64)
    for batch in batches:
        batch = to_device(batch, env, eos_id, attn)
        with autocast(env.device):
            total[0] += compute_loss(model, batch).double()
        total[1] += 1
    D.all_reduce_sum(total, env)
    model.train(was_training)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over trainable parameters; weight decay only on matrices (not norms/biases), as in nanoGPT.
    Fused (one kernel for all parameters) on CUDA unless `optim.fused` says otherwise."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = cfg.optim.fused if cfg.optim.fused is not None else device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), fused=fused or None)


def clip_gradients(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_norm: float, in_optimizer: bool
) -> torch.Tensor:
    """The gradients' total 2-norm (before clipping), clipped to `max_norm` (<= 0: not clipped).

    `in_optimizer` (a fused AdamW outside FSDP): the grads are not rescaled here; the factor goes to the
    optimizer as its `grad_scale` (the fused kernel divides each grad by it as it reads it), which saves
    a read and a write of every gradient a step. Otherwise `clip_grad_norm_` scales them in place.
    """
    clip = max_norm if max_norm > 0 else math.inf
    if not in_optimizer:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        return grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm  # DTensor: FSDP
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.get_total_norm(grads)
    # clip_grad_norm_ multiplies by min(max_norm / (norm + 1e-6), 1); dividing by its inverse is the same
    scale = torch.clamp((grad_norm + 1e-6) / clip, min=1.0) if clip < math.inf else None
    optimizer.grad_scale = scale  # type: ignore[attr-defined]
    return grad_norm


def _non_finite(step: int, loss: float, out_dir: Path, skipped: bool) -> NonFiniteLossError:
    where = latest_checkpoint(out_dir)
    what = "its update was skipped" if skipped else "weights were not updated"
    return NonFiniteLossError(
        f"loss is {loss} at step {step}; {what}. Last good checkpoint: "
        f"{where if where else 'none (no checkpoint written yet)'}. Lower optim.lr or check the data, "
        "then rerun with resume=true."
    )


def train_loop(
    cfg: RunConfig,
    model: torch.nn.Module,
    data: BatchSource,
    env: D.DistEnv,
    sinks: list[MetricSink],
    n_params_non_embedding: int,
    eos_id: int | None = None,
) -> dict[str, Any]:
    """Train `model` (on env.device, unwrapped) to `cfg.schedule.max_steps`, resuming from the latest
    checkpoint in output_dir when `cfg.resume`. Returns loss/step/token/time numbers for the summary.

    `eos_id`: mask attention at document boundaries (CPT with `data.doc_mask`). The step never waits for
    the GPU: loss, grad norm and token counts stay on the device and are read at log / eval / checkpoint
    steps. With a fused optimizer a non-finite step is skipped on the device (found_inf) and reported at
    the next read; otherwise the loss is checked every step, before the update.
    """
    sched, out_dir = cfg.schedule, Path(cfg.output_dir)
    if env.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul left outside autocast
    objective = build_objective(cfg, model)
    train_model = P.prepare_model(cfg, objective, env)
    attn = getattr(getattr(model, "config", None), "_attn_implementation", "sdpa")
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
    source: Any = data
    if cfg.perf.prefetch_batches > 0:
        source = Prefetcher(
            data, sched.micro_batch_size, cfg.perf.prefetch_batches, env.device.type == "cuda"
        )
    dev = env.device
    defer = bool(optimizer.defaults.get("fused")) and not P.uses_fsdp(cfg, env)
    bad = torch.zeros(2, device=dev, dtype=torch.float64)  # [first non-finite step, its loss]
    if defer:
        optimizer.found_inf = torch.zeros((), device=dev, dtype=torch.float32)  # read by fused AdamW
    n_micro = sched.grad_accum_steps * env.world_size
    tokens_run = torch.zeros((), device=dev, dtype=torch.float64)  # tokens since this run started
    peak = peak_flops(dev, cfg.peak_flops)
    tokens_at_start, tokens_at_log, step_at_log = tokens_seen, tokens_seen, step
    config_dict = to_dict(cfg)
    t_start = t_log = time.perf_counter()
    train_model.train()
    try:
        while step < sched.max_steps:
            lr = lr_at(
                step,
                lr=cfg.optim.lr,
                min_lr=cfg.optim.min_lr,
                warmup_steps=cfg.optim.warmup_steps,
                max_steps=sched.max_steps,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            stats = torch.zeros(2, device=dev, dtype=torch.float64)  # [sum of micro losses, tokens]
            for micro in range(sched.grad_accum_steps):
                with record_function("train.data"):
                    host = source.next_batch(sched.micro_batch_size)
                    n_tokens = batch_tokens(host)
                    batch = to_device(host, env, eos_id, attn)
                with P.grad_sync(train_model, micro == sched.grad_accum_steps - 1):
                    with record_function("train.forward"), autocast(dev):
                        loss = compute_loss(train_model, batch)
                    with record_function("train.backward"):
                        (loss / sched.grad_accum_steps).backward()
                stats[0] += loss.detach().double()
                stats[1] += n_tokens
            with record_function("train.clip"):
                D.all_reduce_sum(stats, env)
                step_loss = stats[0] / n_micro
                grad_norm = clip_gradients(model, optimizer, cfg.optim.grad_clip, defer)
            if defer:
                is_bad = ~torch.isfinite(step_loss) | ~torch.isfinite(grad_norm)
                optimizer.found_inf.copy_(is_bad)
                first = is_bad & (bad[0] == 0)  # python scalars below: no host-to-device copy, no sync
                bad.copy_(
                    torch.stack(
                        [torch.where(first, step + 1.0, bad[0]), torch.where(first, step_loss, bad[1])]
                    )
                )
            elif not math.isfinite(float(step_loss)):
                raise _non_finite(step + 1, float(step_loss), out_dir, skipped=False)
            with record_function("train.optimizer"):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_run += stats[1]
            due_log = step % sched.log_every == 0 or step == sched.max_steps
            due_eval = sched.eval_every > 0 and (step % sched.eval_every == 0 or step == sched.max_steps)
            due_ckpt = (sched.checkpoint_every > 0 and step % sched.checkpoint_every == 0) or (
                sched.final_checkpoint and step == sched.max_steps
            )
            if not (due_log or due_eval or due_ckpt or step == sched.max_steps):
                continue
            # one host read per logged step: loss, grad norm, tokens, first non-finite step
            with record_function("train.read"):
                loss_v, norm_v, run_tokens, bad_step, bad_loss = torch.stack(
                    [step_loss, grad_norm.double(), tokens_run, bad[0], bad[1]]
                ).tolist()
            if bad_step > 0:
                raise _non_finite(int(bad_step), bad_loss, out_dir, skipped=True)
            last_loss, tokens_seen = loss_v, tokens_at_start + int(run_tokens)
            if due_log:
                now = time.perf_counter()
                dt, n_steps = now - t_log, max(step - step_at_log, 1)
                tps = (tokens_seen - tokens_at_log) / dt if dt > 0 else 0.0
                metrics = {
                    "loss": loss_v,
                    "lr": lr,
                    "grad_norm": norm_v,
                    "tokens_per_s": tps,
                    "tokens_seen": tokens_seen,
                    "mfu": mfu(n_params_non_embedding, tps, peak, env.world_size),
                    "memory_mib": memory_mib(dev),
                    "step_time_s": dt / n_steps,
                }
                emit(sinks, "log_metrics", step, metrics)
            if due_eval:
                with record_function("train.eval"):
                    batches = source.eval_batches(sched.micro_batch_size, sched.eval_batches)
                    last_eval = evaluate(objective, batches, env, eos_id, attn)
                emit(sinks, "log_metrics", step, {"eval_loss": last_eval})
            if due_ckpt:
                with record_function("train.checkpoint"):
                    rngs = D.gather_objects(rng_state(), env)
                    model_state, optim_state = P.full_state(model, optimizer)
                    if env.is_main:
                        save_checkpoint(
                            out_dir, step, model, optimizer, data_state=source.state(), tokens_seen=tokens_seen,
                            config=config_dict, rng=rngs, keep_last=sched.keep_checkpoints,
                            extra={"loss": last_loss, "eval_loss": last_eval},
                            model_state=model_state, optim_state=optim_state,
                        )  # fmt: skip
                    D.barrier(env)
            if due_log:
                t_log, tokens_at_log, step_at_log = time.perf_counter(), tokens_seen, step
    finally:
        if isinstance(source, Prefetcher):
            source.close()
    train_wall = time.perf_counter() - t_start
    return {
        "final_loss": last_loss,
        "final_eval_loss": last_eval,
        "steps": step,
        "tokens_seen": tokens_seen,
        "tokens_this_run": tokens_seen - tokens_at_start,
        "train_wall_time_s": train_wall,
        "tokens_per_s": (tokens_seen - tokens_at_start) / max(train_wall, 1e-9),
        "resumed_from": resumed_from,
        "last_checkpoint": str(latest_checkpoint(out_dir)) if env.is_main else None,
    }
