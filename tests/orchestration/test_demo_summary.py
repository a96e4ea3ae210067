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
