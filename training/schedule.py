"""Learning-rate schedule: linear warmup, then cosine decay to a floor (as in nanoGPT / Chinchilla)."""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based).

    Steps 0..warmup_steps-1 ramp linearly up to `lr` (step 0 is already lr / warmup_steps, never 0, so
    the first update moves the weights); then cosine from `lr` at `warmup_steps` to `min_lr` at
    `max_steps`; `min_lr` beyond.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    decay_steps = max(1, max_steps - warmup_steps)
    progress = (step - warmup_steps) / decay_steps
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
