"""The stages `python -m training`, the Pipes worker and the training assets run: init, cpt, sft.

Each is a body in the one trainer scaffold (trainer.run_stage). The stage modules are imported when a
stage runs, not here, so `import training` stays cheap (no torch) for callers that only build configs,
such as the orchestrator. This module's import closure is the training code a stage's output depends on:
the assets fingerprint it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from training.config import RunConfig

if TYPE_CHECKING:
    from training.metrics import MetricSink
    from training.trainer import StageBody

COMMANDS = ("init", "cpt", "sft")


def stage_body(command: str) -> StageBody:
    """The body of stage `command` (one of COMMANDS)."""
    if command == "init":
        from training.init import init_body as body
    elif command == "cpt":
        from training.cpt import cpt_body as body
    elif command == "sft":
        from training.sft import sft_body as body
    else:
        raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
    return body


def run(command: str, cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Run one stage: "init" (export a fresh base model), "cpt" (continual pre-training) or "sft".

    Returns the stage's summary dict (strict JSON). Sinks receive metrics on rank 0 and are closed at
    the end (with the exception on failure). Raises on any failure.
    """
    body = stage_body(command)
    from training.trainer import run_stage

    return run_stage(command, body, cfg, sinks)


def init_base(cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Create the base model and export it to output_dir/hf (no training); returns the summary dict."""
    return run("init", cfg, sinks)
