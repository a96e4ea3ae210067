"""The training subprocess behind the training assets, speaking Dagster Pipes.

``python -m orchestration.pipes_worker <init|cpt|sft> --config CONFIG.json`` runs the same
``training.run`` as ``python -m training``, and additionally streams its metrics and logs back
to the Dagster run and reports the asset materialization. It imports only ``dagster_pipes``
(a small dependency-free package), never Dagster itself, so a GPU node needs no orchestrator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from dagster_pipes import open_dagster_pipes


def _scalar_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, bool | int | float | str) or value is None:
            out[key] = value
        else:
            out[key] = json.dumps(value, default=str)[:2000]
    return out


def talks_to_dagster(env: Mapping[str, str]) -> bool:
    """The first process of the node launched through Pipes (its context is in the environment; other
    nodes, started beside it, have none). One node: rank 0. c10d may give global rank 0 to another
    node, so the rank alone does not say it; every rank returns the summary this process reports."""
    if env.get("LOCAL_RANK", "0") != "0":
        return False
    return "DAGSTER_PIPES_CONTEXT" in env or env.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    from training import run
    from training.config import load_config
    from training.metrics import CallbackSink

    parser = argparse.ArgumentParser(prog="orchestration.pipes_worker")
    parser.add_argument("command", choices=["init", "cpt", "sft"])
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)

    if not talks_to_dagster(os.environ):
        # under torchrun one process talks to Dagster; the others just train
        run(args.command, load_config(args.config))
        return 0

    with open_dagster_pipes() as pipes:
        cfg = load_config(args.config)
        log_every = max(1, int(getattr(getattr(cfg, "schedule", None), "log_every", 10) or 10))

        def on_metrics(step: int, metrics: dict[str, Any]) -> None:
            if step % log_every == 0:
                shown = ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
                )
                pipes.log.info(f"step {step}: {shown}")
                pipes.report_custom_message({"step": step, **metrics})

        def on_text(message: str) -> None:
            pipes.log.info(message)

        try:
            summary = run(args.command, cfg, sinks=[CallbackSink(on_metrics, on_text)])
        except BaseException as exc:
            # The exception also closes the Pipes session (its traceback goes to the engine event);
            # this line puts the cause in the run's log where an engineer reads first.
            pipes.log.error(
                f"training {args.command} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-4000:]}"
            )
            raise
        pipes.report_asset_materialization(metadata=_scalar_metadata(summary))
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
