import json

import pytest

from training.config import MlflowConfig
from training.cpt import train_cpt
from training.metrics import CallbackSink, JSONLSink, MetricSink, MlflowSink, mfu


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One SQLite store per module: creating it runs MLflow's schema migrations (seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_sinks_follow_the_protocol(tmp_path):
    assert isinstance(JSONLSink(tmp_path / "m.jsonl"), MetricSink)
    assert isinstance(CallbackSink(lambda s, m: None), MetricSink)


def test_jsonl_sink_records_and_failure(tmp_path):
    sink = JSONLSink(tmp_path / "m.jsonl")
    sink.log_metrics(3, {"loss": 1.5})
    sink.close(RuntimeError("boom"))
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines == [{"step": 3, "loss": 1.5}, {"text": "failed: RuntimeError: boom"}]


def test_mfu_is_six_n_d_over_peak():
    assert mfu(1_000, tokens_per_s=500.0, peak=1e7, world_size=2) == pytest.approx(6 * 1_000 * 500 / 2e7)


def test_mlflow_logs_params_metrics_artifacts_and_finishes(make_cfg, tracking_uri):
    from mlflow import MlflowClient

    seen = []
    cfg = make_cfg("mlflow_ok", steps=4)
    cfg.mlflow = MlflowConfig(
        tracking_uri=tracking_uri, experiment="cpt-tests", run_name="ok", tags={"stage": "1"}
    )
    train_cpt(cfg, [CallbackSink(lambda step, m: seen.append((step, m)))])

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("cpt-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.stage = '1'")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.hidden_size"] == "64" and run.data.params["schedule.max_steps"] == "4"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    losses = {m.step: m.value for m in history}
    assert losses == {step: m["loss"] for step, m in seen if "loss" in m}  # same numbers as the callback got
    for key in ("lr", "grad_norm", "tokens_per_s", "tokens_seen", "mfu", "memory_mib", "final_loss"):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "config.json", "metrics.jsonl"} <= artifacts


def test_mlflow_run_of_caller_is_marked_failed(make_cfg, tracking_uri, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp_id = client.create_experiment("caller-owned")
    run_id = client.create_run(exp_id, tags={"dagster_run": "x"}).info.run_id
    cfg = make_cfg("mlflow_fail", steps=4)
    cfg.data.shards_dir = str(tmp_path / "no_such_shards")
    cfg.mlflow = MlflowConfig(tracking_uri=tracking_uri, run_id=run_id)
    with pytest.raises(FileNotFoundError, match="no_such_shards"):
        train_cpt(cfg)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert "no_such_shards" in run.data.tags["error"]
    assert (
        run.data.params["data.shards_dir"] == cfg.data.shards_dir
    )  # the config is logged before anything can fail
    assert run.data.tags["dagster_run"] == "x"


def test_mlflow_sink_needs_run_or_experiment(tmp_path):
    with pytest.raises(ValueError, match="set run_id"):
        MlflowSink(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'never.db'}"))
    assert not (tmp_path / "never.db").exists()  # refused before touching any store
