"""`make demo`'s line over the asset checks: a refused promotion (a non-blocking warning) is not a failure."""

from __future__ import annotations

from types import SimpleNamespace

from dagster import AssetCheckSeverity, MetadataValue

from orchestration.demo import check_summary


def _check(name, passed, severity=AssetCheckSeverity.ERROR, **metadata):
    return SimpleNamespace(check_name=name, passed=passed, severity=severity, metadata=metadata)


def test_warnings_are_told_apart_from_failures():
    checks = [
        _check("schema", True),
        _check("promotion", False, AssetCheckSeverity.WARN, decision=MetadataValue.text("refused")),
        _check("row_count", False),
        _check("drift", False, AssetCheckSeverity.WARN),
    ]
    assert (
        check_summary(checks)
        == "4 asset checks: 1 passed, warned: promotion (refused), drift, FAILED: row_count"
    )
    assert check_summary(checks[:1]) == "1 asset checks: 1 passed"
    assert check_summary([]) == "0 asset checks: 0 passed"


def test_cluster_demo_report_says_the_same(monkeypatch, capsys):
    """`make cluster-demo`'s report uses the same line (it used to count a refused promotion as failed)."""
    import mlflow.tracking

    from orchestration import cluster_demo

    class NoStore:
        def get_experiment_by_name(self, name):
            return None

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", NoStore)
    events = [
        SimpleNamespace(event_type_value="ASSET_CHECK_EVALUATION", event_specific_data=c)
        for c in (
            _check("schema", True),
            _check("promotion", False, AssetCheckSeverity.WARN, decision=MetadataValue.text("refused")),
        )
    ]
    result = SimpleNamespace(
        run_id="r1", success=True, all_events=events, get_asset_materialization_events=lambda: [1, 2, 3]
    )
    workers = {"tokenizer": ["worker1@vm"], "sft_model": ["worker2@vm"]}
    cluster_demo._report(result, workers, {"worker1": 11}, 12.0, SimpleNamespace(name="cluster_micro"))
    out = capsys.readouterr().out
    assert (
        "3 assets materialized over 2 workers; 2 asset checks: 1 passed, warned: promotion (refused)" in out
    )
    assert "worker1@vm (pid 11): 1 steps" in out and "failed" not in out.lower()
