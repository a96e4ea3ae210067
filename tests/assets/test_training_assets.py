"""The training assets without the rest of the graph: each profile's stage configs (read by
``training.config.from_profile``), the code fingerprint, and what a failing training subprocess leaves
behind (a failed asset with the error, a FAILED MLflow run)."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, PipesSubprocessClient, materialize

from assets.profile import load_profile
from assets.resources import ForgeResource, MlflowResource
from assets.training import STAGES, TRAINING_ENTRY, base_model, worker_command
from forge.core.markers import write_marker
from training.config import config_from_dict, from_profile, to_dict


def _configs(profile: dict, tmp_path: Path) -> dict:
    """Every training asset's RunConfig under `profile`, as the asset builds it."""
    return {
        stage: from_profile(
            spec["section"],
            profile.get("model"),
            profile.get("training"),
            output_dir=tmp_path / stage,
            tokenizer_dir=tmp_path / "tok",
            parent_hf=tmp_path / spec["parent"] / "hf" if spec["parent"] else None,
            data=tmp_path / spec["data"] if spec["data"] else None,
            name=stage,
        )
        for stage, spec in STAGES.items()
    }


def test_profile_sections_map_to_each_stage(tmp_path: Path):
    profile = load_profile("micro")
    cfgs = _configs(profile, tmp_path)
    base, s1, sft = cfgs["base_model"], cfgs["cpt_stage1_model"], cfgs["sft_model"]
    assert base.name == "base_model" and base.model.init == "config"
    assert base.model.hidden_size == profile["model"]["hidden_size"]
    assert base.model.tokenizer_dir == str(tmp_path / "tok") and base.data.shards_dir is None

    assert (s1.model.init, s1.model.name_or_path) == ("pretrained", str(tmp_path / "base_model" / "hf"))
    assert s1.data.shards_dir == str(tmp_path / "cpt_stage1_shards")
    assert s1.data.seq_len == profile["training"]["stage1"]["seq_len"]
    assert s1.schedule.max_steps == profile["training"]["stage1"]["max_steps"]
    assert s1.optim.lr == profile["training"]["stage1"]["lr"]
    assert cfgs["cpt_stage2_model"].model.name_or_path == str(tmp_path / "cpt_stage1_model" / "hf")

    assert sft.data.sft_path == str(tmp_path / "sft_dataset" / "train.jsonl")
    assert sft.lora.r == profile["training"]["sft"]["lora"]["r"]


@pytest.mark.parametrize("name", ["micro", "default", "gpu", "cluster"])
def test_every_profile_gives_configs_the_trainer_accepts(name, tmp_path):
    """What the asset writes to run_config.json is what `python -m training` reads back."""
    for stage, cfg in _configs(load_profile(name), tmp_path).items():
        assert config_from_dict(to_dict(cfg)) == cfg
        if name in ("gpu", "cluster") and stage != "base_model":
            assert cfg.compile and cfg.device == "cuda" and cfg.data.doc_mask == (stage != "sft_model")
        if name == "cluster":
            assert cfg.parallel == ("ddp" if stage == "sft_model" else "fsdp")  # LoRA SFT under DDP


def test_training_code_fingerprint_covers_what_the_stages_import():
    from forge.core.stage import import_closure

    closure = set(import_closure(TRAINING_ENTRY))
    for module in (
        "cpt",
        "sft",
        "init",
        "trainer",
        "loop",
        "losses",
        "data",
        "model",
        "parallel",
        "checkpoint",
    ):
        assert f"training.{module}" in closure, module


def test_a_misspelled_training_key_in_a_profile_file_names_the_key(tmp_path: Path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("extends: micro\nname: typo\ntraining:\n  stage1: {lrr: 0.1}\n")
    with pytest.raises(ValueError) as err:
        load_profile(str(bad))
    assert "lrr" in str(err.value) and "training.stage1" in str(err.value)


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
