from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from contracts.bfcl import SUPPORTED_CATEGORIES, BfclItem, load_category
from contracts.bfcl import category as bfcl_category
from evaluation.bfcl.data import download_bfcl_wheel, extract_bfcl_data, prompt_functions


@pytest.mark.parametrize("category", SUPPORTED_CATEGORIES)
def test_load_category_fixtures(fixtures_dir, category):
    items = load_category(fixtures_dir, category)
    assert items, category
    for item in items:
        assert isinstance(item, BfclItem) and item.category == category
        assert item.messages and item.messages[-1]["role"] == "user"
        if not bfcl_category(category).has_answers:
            assert item.ground_truth is None
        else:
            assert item.ground_truth and all(len(answer) == 1 for answer in item.ground_truth)
            assert {next(iter(a)) for a in item.ground_truth} <= {f["name"] for f in item.functions}
    assert len(load_category(fixtures_dir, category, limit=1)) == 1


def test_answers_are_joined_by_id_not_position(tmp_path, fixtures_dir):
    questions = (fixtures_dir / "BFCL_v4_simple_python.json").read_text().splitlines()[:2]
    answers = (fixtures_dir / "possible_answer" / "BFCL_v4_simple_python.json").read_text().splitlines()[:2]
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "BFCL_v4_simple_python.json").write_text("\n".join(questions) + "\n")
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        "\n".join(reversed(answers)) + "\n"
    )
    items = load_category(tmp_path, "simple_python")
    for item, line in zip(items, answers, strict=True):
        assert item.ground_truth == json.loads(line)["ground_truth"]


def test_missing_answer_and_bad_category_are_clear_errors(tmp_path, fixtures_dir):
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "BFCL_v4_multiple.json").write_text((fixtures_dir / "BFCL_v4_multiple.json").read_text())
    (tmp_path / "possible_answer" / "BFCL_v4_multiple.json").write_text("")
    with pytest.raises(ValueError, match="has no possible answer"):
        load_category(tmp_path, "multiple")
    with pytest.raises(ValueError, match="unsupported BFCL category"):
        load_category(tmp_path, "multi_turn_base")
    (tmp_path / "BFCL_v4_irrelevance.json").write_text('{"id": "x"\n')
    with pytest.raises(ValueError, match=r"BFCL_v4_irrelevance.json:1"):
        load_category(tmp_path, "irrelevance")


def test_prompt_functions_rewrites_java_types_but_not_the_original(fixtures_dir):
    item = next(i for i in load_category(fixtures_dir, "simple_java") if i.id == "simple_java_22")
    docs = prompt_functions(item.functions, item.category)
    spec = docs[0]["parameters"]["properties"]["ids"]
    assert spec["type"] == "string" and "items" not in spec
    assert "Java ArrayList type parameter in string representation" in spec["description"]
    assert docs[0]["description"].endswith("Java 8 SDK syntax.")
    assert (
        item.functions[0]["parameters"]["properties"]["ids"]["type"] == "ArrayList"
    )  # checker keeps originals
    python_functions = load_category(fixtures_dir, "simple_python")[0].functions
    before = json.dumps(python_functions)
    python_docs = prompt_functions(python_functions, "simple_python")
    assert python_docs[0]["description"].endswith("Python 3 syntax.")
    assert json.dumps(python_functions) == before  # the originals are untouched (copied where changed)
    for category in ("simple_java", "simple_javascript"):
        functions = [f for i in load_category(fixtures_dir, category) for f in i.functions]
        before = json.dumps(functions)
        assert all(
            s["type"] == "string"
            for d in prompt_functions(functions, category)
            for s in d["parameters"]["properties"].values()
        )
        assert json.dumps(functions) == before


def _fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bfcl_eval/__init__.py", "")
        archive.writestr("bfcl_eval/eval_checker/x.py", "")
        archive.writestr("bfcl_eval/data/BFCL_v4_irrelevance.json", '{"id": "irrelevance_0"}\n')
        archive.writestr("bfcl_eval/data/possible_answer/BFCL_v4_simple_python.json", "{}\n")
    return path


def test_download_runs_pip_download_only_when_absent(tmp_path):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        _fake_wheel(tmp_path / "bfcl_eval-2026.3.23-py3-none-any.whl")
        return subprocess.CompletedProcess(command, 0, "", "")

    wheel = download_bfcl_wheel(tmp_path, runner=fake_run)
    assert wheel.name == "bfcl_eval-2026.3.23-py3-none-any.whl"
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "bfcl-eval==2026.3.23" in calls[0]
    assert "install" not in calls[0]
    assert download_bfcl_wheel(tmp_path, runner=fake_run) == wheel and len(calls) == 1


def test_download_failure_is_reported(tmp_path):
    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "no network")

    with pytest.raises(RuntimeError, match="no network"):
        download_bfcl_wheel(tmp_path, runner=failing)


def test_extract_only_data_and_is_reused(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl")
    data = extract_bfcl_data(wheel, tmp_path / "out")
    assert data == tmp_path / "out" / "bfcl_eval" / "data"
    assert (data / "BFCL_v4_irrelevance.json").is_file()
    assert (data / "possible_answer" / "BFCL_v4_simple_python.json").is_file()
    assert not (tmp_path / "out" / "bfcl_eval" / "eval_checker").exists()
    assert [p.name for p in (tmp_path / "out" / "bfcl_eval").iterdir()] == ["data"]  # no temp dirs left
    (data / "BFCL_v4_irrelevance.json").write_text("changed")
    assert extract_bfcl_data(wheel, tmp_path / "out") == data
    assert (data / "BFCL_v4_irrelevance.json").read_text() == "changed"  # complete extraction reused


def test_extract_rejects_unsafe_paths(tmp_path):
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("bfcl_eval/data/../../escape.json", "{}")
    with pytest.raises(ValueError, match="unsafe path"):
        extract_bfcl_data(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / "bfcl_eval" / "data").exists()
