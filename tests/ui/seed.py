"""What the MLflow UI test looks at, written directly into a `micro` profile's store: a training
run with a loss history (logged per step, as the trainer's MLflow sink does) and its loss-curve
PNG (drawn by ``training.plots``), and two registered versions of the SFT model with scorecard
metrics and parameters (``tests.evaluation.registry_seed``). Nothing is trained: seconds, not
minutes."""

from __future__ import annotations

import json
import math
from typing import Any

from tests.evaluation.registry_seed import seed_version


def seed_mlflow(paths) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from assets.tracking import ensure_experiment
    from training.plots import LOSS_CURVE, plot_loss_curve

    uri, root = paths.tracking_uri, paths.artifact_root
    exp_id = ensure_experiment(uri, "hephaestus-micro", root)
    client = MlflowClient(uri)
    run = client.create_run(
        exp_id, run_name="cpt_stage1_model", tags={"hephaestus.stage": "cpt_stage1_model"}
    )
    run_id = run.info.run_id
    losses = [(step, 6.9 * math.exp(-step / 40) + 2.1 + 0.05 * math.sin(step)) for step in range(1, 121)]
    now = 1_700_000_000_000
    client.log_batch(run_id, metrics=[Metric("loss", v, now + s, s) for s, v in losses])
    for key, value in {"training.lr": 0.003, "training.seq_len": 64, "model.hidden_size": 32}.items():
        client.log_param(run_id, key, value)
    out = paths.models / "cpt_stage1_model"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in losses))
    curve = plot_loss_curve(out / "metrics.jsonl", out / LOSS_CURVE, "cpt_stage1_model: training loss")
    client.log_artifact(run_id, str(curve))
    client.set_terminated(run_id)

    name = "hephaestus-sft-micro"
    ppl = {"text": 30.0, "code": 20.0, "agent": 15.0}
    v1 = seed_version(uri, root, name, n_valid=5, ppl=ppl, params={"sft.lr": 0.002, "sft.lora_r": 4})
    v2 = seed_version(
        uri, root, name, n_valid=14, ppl={**ppl, "text": 30.4}, params={"sft.lr": 0.001, "sft.lora_r": 8}
    )
    client.set_registered_model_alias(name, "champion", v1)
    runs = {v: client.get_model_version(name, v).run_id for v in (v1, v2)}
    return {
        "experiment_id": exp_id,
        "training_run_id": run_id,
        "model_name": name,
        "versions": [v1, v2],
        "version_runs": runs,
    }
