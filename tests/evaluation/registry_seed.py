"""Registered model versions built directly (no training): a scorecard run with params, metrics and
the ``scorecard/`` artifacts the promotion check reads, and a model version with the ``challenger``
alias — what the scorecard asset leaves behind, at the cost of a few SQLite writes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from evaluation.promotion import BFCL_ITEMS, CHALLENGER, SCORECARD_JSON
from evaluation.scorecard import build_scorecard

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def bfcl_rows(n_valid_per_category: int, n_per_category: int = 20) -> list[dict[str, Any]]:
    """The same item ids for every version; the first ``n_valid_per_category`` of each category valid."""
    return [
        {"id": f"{cat}_{i}", "category": cat, "valid": i < n_valid_per_category, "error_type": "seeded"}
        for cat in CATEGORIES
        for i in range(n_per_category)
    ]


def scorecard_for(rows: list[dict[str, Any]], ppl: dict[str, float], model: str) -> dict[str, Any]:
    from evaluation.bfcl.runner import summarize

    result = summarize(rows)
    results: dict[str, Any] = {"model": model, "bfcl": {k: v for k, v in result.items() if k != "rows"}}
    for cat, value in ppl.items():
        results[f"ppl_{cat}"] = {"ppl": value, "nll_per_token": 0.0, "n_tokens": 1000}
    return build_scorecard(results)


def seed_version(
    tracking_uri: str,
    artifact_root: str,
    model_name: str,
    *,
    n_valid: int,
    ppl: dict[str, float],
    params: dict[str, Any],
    experiment: str = "hephaestus-micro",
) -> str:
    """One scorecard run and its registered version (alias ``challenger``); returns the version."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from assets.tracking import ensure_experiment

    exp_id = ensure_experiment(tracking_uri, experiment, artifact_root)
    client = MlflowClient(tracking_uri)
    rows = bfcl_rows(n_valid)
    card = scorecard_for(rows, ppl, model_name)
    run = client.create_run(exp_id, run_name="scorecard", tags={"hephaestus.stage": "scorecard"})
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, value in card["headline"].items():
        client.log_metric(run_id, key.replace("/", "."), float(value))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / SCORECARD_JSON).write_text(json.dumps(card))
        (d / BFCL_ITEMS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        client.log_artifacts(run_id, str(d), artifact_path="scorecard")
    client.set_terminated(run_id)
    try:
        client.create_registered_model(model_name)
    except MlflowException:
        pass  # already there
    version = client.create_model_version(model_name, f"runs:/{run_id}/model", run_id=run_id)
    for key, value in card["headline"].items():
        client.set_model_version_tag(model_name, version.version, key.replace("/", "."), f"{value:.6g}")
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return str(version.version)
