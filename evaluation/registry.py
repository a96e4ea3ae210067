"""Register a fine-tuned model in the MLflow model registry, with its scores.

The model is logged as an MLflow pyfunc wrapping the Hugging Face directory (weights in
safetensors, tokenizer with the tool-aware chat template), so ``mlflow.pyfunc.load_model`` gives
a callable that answers a conversation with tools (:mod:`evaluation.pyfunc_model`: logged as code with
the ``evaluation`` package, so it loads where this project is not installed). Scores go on the run as metrics and on the
model version as tags, so two versions compare side by side in the MLflow UI.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc

from evaluation.pyfunc import ToolCallingModel  # noqa: F401  (versions registered before 2026-12-05 unpickle it here)

#: the pyfunc's code, logged with the model (MLflow's models from code), and the package it imports
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parent


def register_model(
    *,
    tracking_uri: str,
    run_id: str,
    hf_dir: Path,
    model_name: str,
    scores: dict[str, float],
    description: str,
    alias: str | None = None,
) -> dict[str, Any]:
    """Log ``hf_dir`` as a pyfunc in ``run_id`` and register it under ``model_name``; return the version.

    ``alias`` (e.g. the ablation arm, ``sft_cpt2``) is pointed at the new version, so
    ``models:/<name>@<alias>`` always loads the latest checkpoint of that stage."""
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # the rows' messages and tools (JSON schemas) are free-form: the schema checks list[dict] and no deeper
        warnings.filterwarnings(
            "ignore", message=".*Any type hint is inferred as AnyType.*", category=UserWarning
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            code_paths=[str(PACKAGE_DIR)],
            artifacts={"hf_dir": str(hf_dir)},
            registered_model_name=model_name,
            pip_requirements=["torch", "transformers", "safetensors"],
        )
    client = MlflowClient(tracking_uri)
    version = info.registered_model_version
    for key, value in scores.items():
        client.set_model_version_tag(model_name, str(version), key, f"{value:.6g}")
    client.update_model_version(model_name, str(version), description=description)
    out = {"model_name": model_name, "version": int(version), "model_uri": f"models:/{model_name}/{version}"}
    if alias:
        client.set_registered_model_alias(model_name, alias, str(version))
        out["alias_uri"] = f"models:/{model_name}@{alias}"
    return out
