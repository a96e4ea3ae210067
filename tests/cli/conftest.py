"""Helpers for the CLI tests: run ``cli.main.main`` in-process, with the project home in a temp dir,
and check the one-line error contract (exit code, message on the last stderr line, no traceback)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def last(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A fresh project home: the CLI's defaults (outputs, cache, BFCL data) resolve below it."""
    h = tmp_path / "home"
    monkeypatch.setenv("HEPHAESTUS_HOME", str(h))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return h


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> Result``: the exit status (argparse's SystemExit included) and the output."""

    def run(*argv: str) -> Result:
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


def _fails(result: Result, rc: int, *fragments: str) -> None:
    assert result.rc == rc, (result.rc, result.err)
    assert "Traceback" not in result.err, result.err
    assert result.last.startswith(("error:", "warning: nothing produced:", "hephaestus")), result.err
    for fragment in fragments:
        assert fragment in result.last, (fragment, result.last)


@pytest.fixture
def fails():
    """``fails(result, rc, *fragments)``: exit ``rc``, no traceback, and every fragment on the last
    stderr line (the one message: ``error: ...``, ``warning: nothing produced: ...`` or argparse's)."""
    return _fails


@pytest.fixture(scope="session")
def trainfx():
    """tests/training/conftest.py as a module: its tiny tokenizer, shard writer and SFT rows."""
    path = Path(__file__).resolve().parents[1] / "training" / "conftest.py"
    spec = importlib.util.spec_from_file_location("training_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
