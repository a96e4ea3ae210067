"""Where training numbers go: a small sink protocol with JSONL, MLflow and callback implementations,
plus the throughput/MFU/memory helpers the loop logs every step.

The trainer owns the sinks it is given: it calls `log_params` once, `log_metrics` per logged step,
`log_artifacts` at the end, and always `close(error)` in `finally` (error is the exception or None).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from training.config import MlflowConfig, flatten

# Nominal dense bf16 peak FLOP/s per device, for the MFU estimate only. CPU has no meaningful peak;
# 1 TFLOP/s is a placeholder so the number is defined (compare CPU MFUs only with each other).
_GPU_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}
CPU_NOMINAL_PEAK = 1e12


@runtime_checkable
class MetricSink(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...
    def log_text(self, msg: str) -> None: ...
    def log_artifacts(self, path: str | Path) -> None: ...
    def close(self, error: BaseException | None = None) -> None: ...


def emit(sinks: list[MetricSink], method: str, *args: Any) -> None:
    """Call `method(*args)` on every sink (the trainer's sinks are empty on ranks other than 0)."""
    for sink in sinks:
        getattr(sink, method)(*args)


def close_sinks(sinks: list[MetricSink], error: BaseException | None) -> None:
    """Close every sink even if one fails to close (the first close failure is re-raised after, unless
    the run itself failed: its error is the one to see)."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.close(error)
        except Exception as e:  # noqa: BLE001 - keep closing the others
            failure = failure or e
    if failure is not None and error is None:
        raise failure


class BaseSink:
    """No-op implementations; subclass and override what you need."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_text(self, msg: str) -> None:
        pass

    def log_artifacts(self, path: str | Path) -> None:
        pass

    def close(self, error: BaseException | None = None) -> None:
        pass


class JSONLSink(BaseSink):
    """Appends one JSON object per logged step to `path` (`{"step": .., "loss": .., ...}`), text as
    `{"text": ..}`. Appends across resumes, so steps after the last checkpoint of a killed run may repeat."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._f.write(json.dumps({"step": step, **metrics}) + "\n")
        self._f.flush()

    def log_text(self, msg: str) -> None:
        self._f.write(json.dumps({"text": msg}) + "\n")
        self._f.flush()

    def close(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.log_text(f"failed: {type(error).__name__}: {error}")
        self._f.close()


class CallbackSink(BaseSink):
    """Forwards metrics (and optionally text) to plain functions, e.g. a Dagster Pipes context's
    `report_asset_materialization` / `log` in the wrapper that launched the run."""

    def __init__(
        self,
        on_metrics: Callable[[int, dict[str, float]], None],
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.on_metrics, self.on_text = on_metrics, on_text

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.on_metrics(step, metrics)

    def log_text(self, msg: str) -> None:
        if self.on_text is not None:
            self.on_text(msg)


class StdoutSink(BaseSink):
    """Human-readable progress on stderr (stdout is kept for the CLI's JSON summary line)."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))
        print(f"step {step}: {shown}", file=sys.stderr, flush=True)

    def log_text(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)


def sqlite_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``<db dir>/artifacts/<experiment>`` for a SQLite store, so a new experiment's artifacts sit
    beside its store (MLflow's default is ``./mlruns`` of the working directory); None otherwise
    (a server or database store decides)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "artifacts" / experiment).as_uri()


class MlflowSink(BaseSink):
    """Logs to an MLflow run: the caller's `run_id` when given (status set back to RUNNING), else a new
    run under `experiment` with `tags`. Ended FINISHED on success, FAILED when closed with an error.

    Uses `MlflowClient` (no process-global active run), so it is safe next to other MLflow users in
    the same process.
    """

    def __init__(self, cfg: MlflowConfig) -> None:
        from mlflow import MlflowClient

        if not cfg.run_id and not cfg.experiment:
            raise ValueError("mlflow: set run_id (an existing run) or experiment (for a new run)")
        self.client = MlflowClient(tracking_uri=cfg.tracking_uri)
        if cfg.run_id:
            self.run_id = cfg.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            exp = self.client.get_experiment_by_name(cfg.experiment)
            exp_id = (
                exp.experiment_id
                if exp
                else self.client.create_experiment(
                    cfg.experiment,
                    artifact_location=sqlite_artifact_location(cfg.tracking_uri, cfg.experiment),
                )
            )
            self.run_id = self.client.create_run(
                exp_id, tags=dict(cfg.tags), run_name=cfg.run_name
            ).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [
            Param(k, json.dumps(v) if not isinstance(v, str) else v)
            for k, v in flatten(params).items()
            if k not in existing  # a resumed run logs the same params again; MLflow refuses re-logging
        ]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, int | float)]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_text(self, msg: str) -> None:
        self.client.set_tag(self.run_id, "last_message", msg[:5000])

    def log_artifacts(self, path: str | Path) -> None:
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path=p.name)
        elif p.is_file():
            self.client.log_artifact(self.run_id, str(p))

    def close(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
        self.client.set_terminated(self.run_id, status="FAILED" if error is not None else "FINISHED")


def peak_flops(device: torch.device, configured: float | None) -> float:
    """Peak FLOP/s of one device for MFU: the configured value, else a nominal one by GPU name."""
    if configured:
        return configured
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in _GPU_PEAK.items() if k in name), 312e12)
    return CPU_NOMINAL_PEAK


def mfu(n_params_non_embedding: int, tokens_per_s: float, peak: float, world_size: int = 1) -> float:
    """Model FLOPs utilisation: 6 * N * tokens/s (forward + backward, attention FLOPs ignored) over the
    peak of all devices."""
    return 6.0 * n_params_non_embedding * tokens_per_s / (peak * world_size)


def memory_mib(device: torch.device) -> float:
    """Peak memory in MiB: CUDA max allocated on GPU, process max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
