"""The registered model loads with ``mlflow.pyfunc.load_model`` where this project is not importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow

from evaluation.registry import register_model

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter without this project: its editable finder and its folders off the import path.
LOAD = """
import importlib.util, json, sys
root = sys.argv[1]
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path = [p for p in sys.path if p not in ("", ".", root)]
assert importlib.util.find_spec("evaluation") is None, "the project is still importable"
import mlflow.pyfunc
mlflow.set_tracking_uri(sys.argv[2])
model = mlflow.pyfunc.load_model(sys.argv[3])
tools = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
rows = [{"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": tools,
         "max_new_tokens": 3},
        {"messages": [{"role": "user", "content": "And in Rome?"}], "max_new_tokens": 24}]
out = model.predict(rows)
print(json.dumps({"out": list(out), "class": type(model.unwrap_python_model()).__name__}))
"""


def test_registered_model_loads_and_answers_without_the_project(tmp_path, model_dir, tokenizer):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as run:
        pass
    registered = register_model(
        tracking_uri=uri,
        run_id=run.info.run_id,
        hf_dir=model_dir,
        model_name="tiny-tool-caller",
        scores={"bfcl.overall_mean": 0.25},
        description="test",
        alias="sft_cpt2",
    )
    assert registered["version"] == 1 and registered["alias_uri"] == "models:/tiny-tool-caller@sft_cpt2"
    assert (
        mlflow.MlflowClient(uri).get_model_version("tiny-tool-caller", "1").tags["bfcl.overall_mean"]
        == "0.25"
    )

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(ROOT), uri, registered["alias_uri"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    short, longer = (len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in result["out"])
    assert (
        0 < short <= 3 + 1 and short < longer <= 24 + 1
    )  # each row's own bound (+1: re-tokenizing a cut text)
    assert result["class"] == "ToolCallingModel"
