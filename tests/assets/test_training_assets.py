"""The training assets without the rest of the graph: config mapping, and what a failing
training subprocess leaves behind (a failed asset with the error, a FAILED MLflow run)."""

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, PipesSubprocessClient, materialize

from assets.profile import load_profile
from assets.resources import ForgeResource, MlflowResource
from assets.training import base_model, run_config, worker_command
from forge.core.markers import write_marker


def test_run_config_maps_profile_sections_to_each_stage(tmp_path: Path):
    profile = load_profile("micro")
    tok = tmp_path / "tok"
    base = run_config(
        "base_model",
        profile,
        output_dir=tmp_path / "b",
        tokenizer_dir=tok,
        parent_hf=None,
        data=None,
        mlflow=None,
    )
    assert base["model"]["init"] == "config"
    assert base["model"]["hidden_size"] == profile["model"]["hidden_size"]
    assert "shards_dir" not in base["data"]

    s1 = run_config(
        "cpt_stage1_model",
        profile,
        output_dir=tmp_path / "s1",
        tokenizer_dir=tok,
        parent_hf=tmp_path / "b" / "hf",
        data=tmp_path / "shards",
        mlflow={"tracking_uri": "x", "run_id": "r"},
    )
    assert s1["model"] == {
        "init": "pretrained",
        "name_or_path": str(tmp_path / "b" / "hf"),
        "tokenizer_dir": str(tok),
    }
    assert s1["data"] == {
        "seq_len": profile["training"]["stage1"]["seq_len"],
        "shards_dir": str(tmp_path / "shards"),
    }
    assert s1["schedule"]["max_steps"] == profile["training"]["stage1"]["max_steps"]
    assert s1["optim"]["lr"] == profile["training"]["stage1"]["lr"]
    assert s1["mlflow"]["run_id"] == "r"

    sft = run_config(
        "sft_model",
        profile,
        output_dir=tmp_path / "sft",
        tokenizer_dir=tok,
        parent_hf=tmp_path / "s2" / "hf",
        data=tmp_path / "sft_data",
        mlflow=None,
    )
    assert sft["data"]["sft_path"] == str(tmp_path / "sft_data" / "train.jsonl")
    assert sft["lora"]["r"] == profile["training"]["sft"]["lora"]["r"]

    # every generated config is accepted by the training library as it is
    from training.config import config_from_dict

    for cfg in (base, s1, sft):
        assert config_from_dict(json.loads(json.dumps(cfg))).output_dir == cfg["output_dir"]


def test_worker_command_uses_torchrun_for_several_processes(tmp_path: Path):
    single = worker_command("cpt", tmp_path / "c.json", 1)
    assert single[1:3] == ["-m", "orchestration.pipes_worker"]
    multi = worker_command("cpt", tmp_path / "c.json", 2)
    assert multi[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in multi


def test_failed_training_subprocess_fails_the_asset_and_its_mlflow_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HEPHAESTUS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    profile = ForgeResource(profile="micro")
    tok = profile.paths.corpus / "tokenizer"
    tok.mkdir(parents=True)
    write_marker(tok, "fp-without-a-tokenizer")  # upstream "done", but the directory holds no tokenizer

    instance = DagsterInstance.ephemeral()
    result = materialize(
        [base_model],
        resources={
            "profile": profile,
            "mlflow": MlflowResource(),
            "pipes_subprocess_client": PipesSubprocessClient(),
        },
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    errors = failure.event_specific_data.error.to_string()
    logs = "\n".join(r.user_message for r in instance.all_logs(result.run_id))
    # the subprocess's own exception reaches the Dagster log through Pipes
    assert "pipes closed with exception" in logs.lower() or "tokenizer" in errors.lower()
    assert "OSError" in logs or "tokenizer" in logs.lower(), logs[-2000:]
    assert "marked FAILED" in logs

    from mlflow import MlflowClient

    client = MlflowClient(profile.paths.tracking_uri)
    exp = client.get_experiment_by_name("hephaestus-micro")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "base_model"
    assert run.info.status == "FAILED"
    assert run.data.tags["dagster.run_id"] == result.run_id
    # no completion marker: a rerun tries again instead of skipping
    assert not (profile.paths.models / "base_model" / "_SUCCESS.json").exists()


@pytest.mark.parametrize("stage", ["cpt_stage1_model", "sft_model"])
def test_stage_configs_name_their_parent(stage, tmp_path):
    cfg = run_config(
        stage,
        load_profile("default"),
        output_dir=tmp_path,
        tokenizer_dir=tmp_path,
        parent_hf=tmp_path / "parent",
        data=tmp_path / "d",
        mlflow=None,
    )
    assert cfg["model"]["name_or_path"] == str(tmp_path / "parent")


@pytest.mark.parametrize("name", ["micro", "default", "gpu", "cluster"])
def test_every_profile_gives_configs_the_trainer_accepts(name, tmp_path):
    """Unknown keys are an error in training.config: a typo in a profile fails here, not on a GPU."""
    from training.config import config_from_dict

    profile = load_profile(name)
    for stage, parent, data in [
        ("base_model", None, None),
        ("cpt_stage1_model", tmp_path / "b", tmp_path / "s1"),
        ("cpt_stage2_model", tmp_path / "s1m", tmp_path / "s2"),
        ("sft_model", tmp_path / "s2m", tmp_path / "sft"),
    ]:
        cfg = run_config(
            stage,
            profile,
            output_dir=tmp_path / stage,
            tokenizer_dir=tmp_path / "tok",
            parent_hf=parent,
            data=data,
            mlflow=None,
        )
        parsed = config_from_dict(json.loads(json.dumps(cfg)))
        if name == "gpu" and stage != "base_model":
            assert parsed.compile and parsed.device == "cuda"
