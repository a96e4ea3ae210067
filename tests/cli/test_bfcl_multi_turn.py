"""`hephaestus bfcl score` on a multi-turn category: per-turn decoded calls in, one verdict per
conversation out; a missing environment folder or a malformed row is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

BFCL = Path(__file__).resolve().parents[1] / "fixtures" / "bfcl"


def _write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "responses.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_score_multi_turn_rows(cli, tmp_path, bfcl_environments):
    truth = [json.loads(line) for line in (BFCL / "possible_answer" / "BFCL_v4_multi_turn_base.json").open()]
    good = {"id": truth[1]["id"], "decoded": [[list(calls)] for calls in truth[1]["ground_truth"]]}
    dict_calls = [[[{"find": {"path": "."}}]], [[{"cat": {"file_name": "student_record.txt"}}]], []]
    short = {"id": truth[0]["id"], "decoded": dict_calls}
    responses = _write(tmp_path, [good, short])
    r = cli("bfcl", "score", "--category", "multi_turn_base", "--responses", responses, "--data", BFCL,
            "--environments", bfcl_environments, "--out", tmp_path / "v")  # fmt: skip
    assert r.rc == 0, r.err
    assert "2 responses, 1 valid (50.0%)" in r.out
    verdicts = [json.loads(line) for line in (tmp_path / "v" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["valid"] for v in verdicts] == [True, False]
    assert verdicts[1]["error_type"].startswith("multi_turn:")
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert summary["summary"]["multi_turn"]["n"] == 2


def test_score_multi_turn_refuses_bad_input(cli, tmp_path):
    responses = _write(tmp_path, [{"id": "multi_turn_base_29", "decoded": [[["ls()"]]]}])
    r = cli("bfcl", "score", "--category", "multi_turn_base", "--responses", responses, "--data", BFCL,
            "--environments", tmp_path / "none")  # fmt: skip
    assert r.rc == 1 and "BFCL environment classes not found" in r.err
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "gorilla_file_system.py").write_text("")
    for row, fragment in [
        ({"id": "multi_turn_base_29", "decoded": [{"ls": {}}]}, "list of steps"),
        ({"id": "multi_turn_base_29", "text": "<tool_call>"}, "decoded must be a list of turns"),
    ]:
        r = cli("bfcl", "score", "--category", "multi_turn_base", "--responses", _write(tmp_path, [row]),
                "--data", BFCL, "--environments", tmp_path / "envs")  # fmt: skip
        assert r.rc == 1 and fragment in r.err, r.err
