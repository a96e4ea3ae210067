"""Runs launched from the UI or the CLI execute with the profile's ``dagster.executor``."""

from __future__ import annotations

from orchestration.definitions import _default_executor, executor_settings


def test_micro_runs_in_one_process_default_in_two():
    assert _default_executor("micro").name == "in_process"
    assert _default_executor("default").name == "multiprocess"


def test_max_concurrent_is_read(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("extends: default\nname: p\ndagster: {executor: multiprocess, max_concurrent: 3}\n")
    assert executor_settings(str(prof)) == ("multiprocess", {"max_concurrent": 3})
    assert _default_executor(str(prof)).name == "multiprocess"
    assert executor_settings("default") == ("multiprocess", {"max_concurrent": 2})
