"""The `hephaestus` console script calls the libraries directly (no Dagster)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from contracts.bfcl import load_category
from evaluation.bfcl.answers import reference_calls

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_bfcl_score_gives_one_verdict_per_response(tmp_path):
    items = load_category(FIXTURES / "bfcl", "simple_python")
    good = {
        "id": items[0].id,
        "decoded": reference_calls("simple_python", items[0].functions, items[0].ground_truth),
    }
    wrong_name = {"id": items[1].id, "decoded": [{"not_a_function": {}}]}
    garbage = {"id": items[2].id, "text": "I cannot help with that <tool_call>{broken"}
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in (good, wrong_name, garbage)))
    out = tmp_path / "verdicts.jsonl"
    proc = _cli(
        "bfcl",
        "score",
        "--category",
        "simple_python",
        "--responses",
        str(responses),
        "--out",
        str(out),
        "--data",
        str(FIXTURES / "bfcl"),
    )
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [good["id"], wrong_name["id"], garbage["id"]]
    assert [v["valid"] for v in verdicts] == [True, False, False]
    assert verdicts[1]["error_type"] and verdicts[2]["error_type"]


def test_unknown_ids_are_refused_with_a_message(tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": "nope_1", "text": ""}) + "\n")
    proc = _cli(
        "bfcl",
        "score",
        "--category",
        "simple_python",
        "--responses",
        str(responses),
        "--out",
        str(tmp_path / "v.jsonl"),
        "--data",
        str(FIXTURES / "bfcl"),
    )
    assert proc.returncode != 0 and "not in simple_python" in proc.stderr


def test_synthesize_from_ingested_fixture_specs(tmp_path):
    apis = tmp_path / "apis"
    proc = _cli("ingest", "openapi", str(FIXTURES / "openapi"), "--out", str(apis), "--json")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert meta["n_rows"] == 13 and meta["n_specs"] == 3
    assert meta["drops"]["openapi_specs"]["dropped"] == {"malformed_spec": 1}
    proc = _cli("synthesize", "--apis", str(apis), "--out", str(tmp_path / "traj"), "--per-api", "1")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert meta["n_rows"] > 0


def test_ingest_openapi_prints_a_summary_with_skips(tmp_path):
    out = tmp_path / "openapi_operations"
    proc = _cli("ingest", "openapi", str(FIXTURES / "openapi"), "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "3 specs of 3 providers parsed; APIs found: 13" in proc.stdout
    assert "malformed_spec" in proc.stdout and "skipped: 1 by reason" in proc.stdout
    assert sorted(p.name for p in out.glob("*.parquet")) == ["openapi-00000.parquet"]


def test_ingest_python_counts_modules_that_fail(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "explodes.py").write_text("raise ImportError('no thanks')\n")
    env_proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "ingest",
            "python",
            "textwrap",
            "explodes",
            "--out",
            str(tmp_path / "py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(mods)},
    )
    assert env_proc.returncode == 0, env_proc.stderr
    assert "1 of 2 modules introspected" in env_proc.stdout
    assert "import_error" in env_proc.stdout
    assert (tmp_path / "py" / "python_module.parquet").exists()
