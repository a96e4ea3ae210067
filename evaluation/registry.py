"""Register a fine-tuned model in the MLflow model registry, with its scores.

The model is logged as an MLflow pyfunc wrapping the Hugging Face directory (weights in
safetensors, tokenizer with the tool-aware chat template), so ``mlflow.pyfunc.load_model`` gives
a callable that answers a conversation with tools. Scores go on the run as metrics and on the
model version as tags, so two versions compare side by side in the MLflow UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc


class ToolCallingModel(mlflow.pyfunc.PythonModel):
    """pyfunc: input rows ``{"messages": [...], "tools": [...]}`` → the generated assistant text."""

    def load_context(self, context) -> None:
        from evaluation.bfcl.runner import load_model

        self.model, self.tokenizer = load_model(context.artifacts["hf_dir"])

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        from evaluation.generation.generate import generate

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        prompts = [{"messages": r["messages"], "tools": r.get("tools") or []} for r in rows]
        max_new = int((params or {}).get("max_new_tokens", 128))
        return generate(self.model, self.tokenizer, prompts, max_new, 8)


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
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ToolCallingModel(),
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
