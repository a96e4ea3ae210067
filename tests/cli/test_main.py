"""The parser as a whole: --version, help on every flag, --debug for the traceback, one meaning for
--out and --json, defaults below the project home."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cli.common import UserError
from cli.main import build_parser


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, (*path, name))


LEAVES = list(_leaf_parsers(build_parser()))


def test_every_subcommand_is_covered():
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"ingest openapi", "ingest python", "ingest hub", "synthesize", "crawl", "train", "eval bfcl",
            "bfcl score", "bfcl download"} <= names  # fmt: skip


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_flag_has_help_and_out_is_a_directory_below_home(path, home):
    parser = dict(_leaf_parsers(build_parser()))[path]  # built now: its defaults follow HEPHAESTUS_HOME
    for action in parser._actions:
        assert action.help, (path, action.dest)
        if action.dest == "out":
            assert "directory" in action.help, path
            assert action.default is None or Path(action.default).is_relative_to(home), (path, action.default)
    assert "--json" in parser.format_help() and "--debug" in parser.format_help()


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_help_exits_zero(cli, path):
    r = cli(*path, "--help")
    assert r.rc == 0 and "usage: hephaestus" in r.out


def test_version_and_usage(cli, fails):
    r = cli("--version")
    assert r.rc == 0 and r.out.startswith("hephaestus ")
    fails(cli(), 2, "required")
    fails(cli("nosuch"), 2, "invalid choice")


def test_debug_shows_the_traceback(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(UserError, match="not a folder of specs"):
        cli("--debug", "ingest", "openapi", notes)
    with pytest.raises(UserError):
        cli("ingest", "openapi", notes, "--debug")


def test_console_script_exit_code_and_one_line(tmp_path):
    """The installed entry point (a subprocess, as a user runs it): message on stderr, exit 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "synthesize", "--apis", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: synthesize --apis {tmp_path}: no Parquet API table there (write one with `ingest`)"
    ]
