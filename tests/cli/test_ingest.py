"""`hephaestus ingest {openapi,python,hub}` and `synthesize`: good input gives a summary and Parquet;
each class of bad input gives one line and a non-zero exit."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPECS = FIXTURES / "openapi"


def test_openapi_folder_prints_a_summary_with_skips(cli, home):
    r = cli("ingest", "openapi", SPECS, "--workers", "2")
    assert r.rc == 0, r.err
    assert "3 specs of 3 providers parsed; APIs found: 13" in r.out
    assert "malformed_spec" in r.out and "skipped: 1 by reason" in r.out
    out = home / "cli" / "raw" / "openapi_operations"  # the default --out, below the project home
    assert f"written: {out}" in r.out
    assert sorted(p.name for p in out.glob("*.parquet")) == ["openapi-00000.parquet"]


def test_openapi_single_spec_file(cli, tmp_path):
    r = cli("ingest", "openapi", SPECS / "getsandbox.com.json", "--out", tmp_path / "o", "--json")
    assert r.rc == 0, r.err
    meta = json.loads(r.out)
    assert (meta["n_specs"], meta["n_providers"], meta["n_rows"]) == (1, 1, 9)


def test_openapi_tarball_in_the_npm_layout(cli, tmp_path):
    tgz = tmp_path / "specs.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        data = (SPECS / "getsandbox.com.json").read_bytes()
        info = tarfile.TarInfo("package/api/getsandbox.com.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    r = cli("ingest", "openapi", tgz, "--out", tmp_path / "o", "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["n_rows"] == 9


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["/nonexistent"], "/nonexistent: no such file or directory"),
        ([str(SPECS), "--max-specs", "-1"], "-1 is not a positive integer"),
        ([str(SPECS), "--workers", "0"], "0 is not a positive integer"),
        ([str(SPECS), "--providers"], "--providers"),
    ],
)
def test_openapi_impossible_values_are_refused_by_the_parser(cli, fails, args, fragment):
    fails(cli("ingest", "openapi", *args), 2, fragment)


def test_openapi_bad_sources(cli, fails, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fails(cli("ingest", "openapi", text), 1, "error:", "not a folder of specs")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(cli("ingest", "openapi", empty, "--out", tmp_path / "o"), 1, "no spec files", str(empty))
    fails(cli("ingest", "openapi", SPECS, "--providers", "nosuch", "--out", tmp_path / "o"), 1, "nosuch")
    bad_tar = tmp_path / "other.tgz"
    with tarfile.open(bad_tar, "w:gz") as tf:
        tf.add(text, "elsewhere/notes.txt")
    fails(cli("ingest", "openapi", bad_tar, "--out", tmp_path / "o"), 1, "package/api/")


def test_out_is_always_a_directory_whose_parent_exists(cli, fails, tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    fails(cli("ingest", "openapi", SPECS, "--out", a_file), 1, "is a file; --out is always a directory")
    fails(cli("ingest", "openapi", SPECS, "--out", tmp_path / "no" / "such"), 1, "does not exist")


def test_python_counts_modules_that_fail(cli, tmp_path, monkeypatch):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "explodes.py").write_text("raise ImportError('no thanks')\n")
    monkeypatch.setenv("PYTHONPATH", str(mods))  # the sandboxed children import from here
    r = cli("ingest", "python", "textwrap", "explodes", "--out", tmp_path / "py")
    assert r.rc == 0, r.err
    assert "1 of 2 modules introspected" in r.out and "import_error" in r.out
    assert (tmp_path / "py" / "python_module.parquet").exists()


def test_python_bad_input(cli, fails, tmp_path):
    fails(cli("ingest", "python", "json", "--timeout", "-5"), 2, "-5 is not a positive number")
    fails(cli("ingest", "python", "no_such_module_xyz", "--out", tmp_path / "o"), 1, "could be introspected")


def test_hub_reads_the_documented_layout(cli, tmp_path):
    r = cli("ingest", "hub", FIXTURES / "hub", "--out", tmp_path / "hub", "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["n_rows"] > 0


def test_hub_bad_input_says_which_layout_is_expected(cli, fails, tmp_path):
    fails(cli("ingest", "hub", "/nonexistent"), 2, "no such file or directory")
    fails(cli("ingest", "hub"), 1, "give a folder")
    natural = tmp_path / "natural"
    (natural / "openai" / "whisper-tiny").mkdir(parents=True)
    (natural / "openai" / "whisper-tiny" / "README.md").write_text("---\npipeline_tag: asr\n---\n")
    r = cli("ingest", "hub", natural, "--out", tmp_path / "o")
    fails(r, 1, "hf/<org>__<model>/README.md", "found 1 elsewhere", "openai/whisper-tiny/README.md")


def test_synthesize_from_ingested_specs_and_bad_inputs(cli, fails, tmp_path):
    apis = tmp_path / "apis"
    assert cli("ingest", "openapi", SPECS, "--out", apis).rc == 0
    r = cli("synthesize", "--apis", apis, "--out", tmp_path / "traj", "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["n_rows"] > 0
    r = cli("synthesize", "--apis", apis, "--out", tmp_path / "traj2")
    assert r.rc == 0 and "conversations:" in r.out and "written:" in r.out
    fails(cli("synthesize", "--apis", "/missing"), 2, "/missing: no such file or directory")
    fails(cli("synthesize", "--apis", tmp_path / "traj" / ".."), 1, "no Parquet API table")
    fails(cli("synthesize", "--apis", apis, "--per-api", "0"), 2, "not a positive integer")
