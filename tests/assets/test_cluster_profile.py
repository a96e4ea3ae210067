"""The `cluster` profiles are read for real (instance, executor, tracking, torchrun layout), and what
they cannot honour is refused when the profile loads, with the file, the section and the fix."""

from pathlib import Path

import pytest

from assets.profile import ProfileError, load_settings
from training.config import profile_sections


def _profile(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def test_cluster_profiles_name_their_instance_executor_and_nodes():
    cluster = load_settings("cluster")
    assert (cluster.dagster.instance, cluster.dagster.executor) == ("postgres", "celery")
    assert cluster.dagster.celery.visibility_timeout_s > 24 * 3600  # longer than a training step
    train = profile_sections(cluster.model, cluster.training)[1]
    assert (train.nproc_per_node, train.nnodes, train.parallel, train.sft.parallel) == (8, 2, "fsdp", "ddp")
    micro = load_settings("cluster_micro")
    assert micro.dagster.executor == "celery" and micro.research.enabled is False
    assert profile_sections(micro.model, micro.training)[1].node_launch == "local"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # FSDP2 + LoRA on several processes: the SFT stage would raise mid-run
        ("training: {sft: {parallel: fsdp}}", "training.sft: parallel 'fsdp' with LoRA on 16 processes"),
        ("dagster: {instance: local}", "executor 'celery' needs instance 'postgres'"),
        ("tracking: {uri: 'sqlite:///m.db'}", "SQLite takes one writer"),
        ("training: {rdzv_endpoint: 'head-node'}", "training.rdzv_endpoint must be HOST:PORT"),
        ("dagster: {executor: dask}", "dagster.executor"),
    ],
)
def test_what_the_cluster_cannot_honour_is_refused_at_load(tmp_path, text, message):
    path = _profile(tmp_path, f"extends: cluster\nname: mine\n{text}\n")
    with pytest.raises(ProfileError, match="mine.yaml") as err:
        load_settings(path)
    assert message in str(err.value)


def test_full_finetune_under_fsdp_is_accepted(tmp_path):
    path = _profile(
        tmp_path, "extends: cluster\nname: mine\ntraining: {sft: {parallel: fsdp, full_finetune: true}}\n"
    )
    assert load_settings(path).name == "mine"


def test_training_nodes_get_one_command_each(tmp_path):
    from assets.training import node_commands

    settings = load_settings("cluster_micro")
    train = profile_sections(settings.model, settings.training)[1]
    commands = node_commands(train, "cpt", tmp_path / "c.json", rdzv_id="run1-cpt")
    assert len(commands) == 2
    for rank, cmd in enumerate(commands):
        assert f"--node-rank={rank}" in cmd and "--nnodes=2" in cmd and "--rdzv-backend=c10d" in cmd
        assert "--local-addr=127.0.0.1" in cmd and cmd[-4:-2] == ["orchestration.pipes_worker", "cpt"]
    endpoints = {a for cmd in commands for a in cmd if a.startswith("--rdzv-endpoint=127.0.0.1:")}
    assert len(endpoints) == 1  # both nodes meet at one free port


def test_cluster_run_names_the_missing_environment(monkeypatch):
    from orchestration.cluster import ClusterConfigError, check_environment

    for name in ("DAGSTER_PG_PASSWORD", "HEPHAESTUS_CELERY_BROKER", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ClusterConfigError, match="DAGSTER_PG_PASSWORD.*HEPHAESTUS_CELERY_BROKER"):
        check_environment(load_settings("cluster"))


def test_pipes_reporter_is_the_first_process_of_the_pipes_node():
    from orchestration.pipes_worker import talks_to_dagster

    assert talks_to_dagster({})  # plain python: one process
    assert talks_to_dagster({"RANK": "1", "LOCAL_RANK": "0", "DAGSTER_PIPES_CONTEXT": "x"})
    assert not talks_to_dagster({"RANK": "0", "LOCAL_RANK": "1", "DAGSTER_PIPES_CONTEXT": "x"})
    assert talks_to_dagster({"RANK": "0", "LOCAL_RANK": "0"})
    assert not talks_to_dagster({"RANK": "1", "LOCAL_RANK": "0"})  # another node, no Pipes context
