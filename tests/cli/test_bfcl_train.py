"""`hephaestus bfcl score`, `eval bfcl` and `train`: good input and each class of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cli.main import main
from contracts.bfcl import load_category
from evaluation.bfcl.answers import reference_calls

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BFCL = FIXTURES / "bfcl"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _responses(tmp_path: Path, rows: list[dict] | list[str]) -> Path:
    path = tmp_path / "responses.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_score_gives_one_verdict_per_response(cli, tmp_path):
    items = load_category(BFCL, "simple_python")
    good = {
        "id": items[0].id,
        "decoded": reference_calls("simple_python", items[0].functions, items[0].ground_truth),
    }
    wrong_name = {"id": items[1].id, "decoded": [{"not_a_function": {}}]}
    garbage = {"id": items[2].id, "text": "I cannot help with that <tool_call>{broken"}
    responses = _responses(tmp_path, [good, wrong_name, garbage])
    r = cli("bfcl", "score", "--category", "simple_python", "--responses", responses, "--out", tmp_path / "v",
            "--data", BFCL)  # fmt: skip
    assert r.rc == 0, r.err
    assert "3 responses, 1 valid (33.3%)" in r.out
    verdicts = [json.loads(line) for line in (tmp_path / "v" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [good["id"], wrong_name["id"], garbage["id"]]
    assert [v["valid"] for v in verdicts] == [True, False, False]
    assert verdicts[1]["error_type"] and verdicts[2]["error_type"]
    assert json.loads((tmp_path / "v" / "summary.json").read_text())["n_valid"] == 1


def test_score_default_data_is_found_from_any_directory(cli, home, tmp_path, monkeypatch):
    """The default --data is below the project home (where `bfcl download` puts it), not the cwd."""
    data = home / "cache" / "bfcl_data_bfcl_eval-2026.3.23-py3-none-any" / "bfcl_eval" / "data"
    shutil.copytree(BFCL, data)
    item = load_category(BFCL, "irrelevance")[0]
    responses = _responses(tmp_path, [{"id": item.id, "text": "no call needed"}])
    monkeypatch.chdir(tmp_path)
    r = cli("bfcl", "score", "--category", "irrelevance", "--responses", responses, "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["n_valid"] == 1
    assert (home / "cli" / "bfcl_score" / "irrelevance" / "verdicts.jsonl").exists()


@pytest.mark.parametrize(
    "rows, fragment",
    [
        (["{not json"], "responses.jsonl:1: not JSON"),
        ([{"text": "x"}], 'needs a string "id"'),
        ([{"id": "simple_python_0", "decoded": {"f": {}}}], '"decoded" must be a list'),
        ([{"id": "simple_python_0", "text": 3}], 'needs "text"'),
        ([{"id": "nope_1", "text": ""}], "not in simple_python"),
        ([], "no responses"),
    ],
)
def test_score_bad_responses(cli, fails, tmp_path, rows, fragment):
    r = cli("bfcl", "score", "--category", "simple_python", "--responses", _responses(tmp_path, rows),
            "--data", BFCL)  # fmt: skip
    fails(r, 1, "error:", fragment)


def test_score_bad_arguments(cli, fails, tmp_path):
    responses = _responses(tmp_path, [{"id": "x", "text": ""}])
    base = ["bfcl", "score", "--responses", responses]
    fails(cli(*base, "--category", "simple"), 2, "invalid choice: 'simple'")
    fails(
        cli("bfcl", "score", "--category", "simple_python", "--responses", tmp_path / "missing"),
        2,
        "no such file",
    )
    fails(
        cli(*base, "--category", "simple_python", "--data", tmp_path),
        1,
        "BFCL data not found",
        "bfcl download",
    )


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, trainfx):
    """A tiny model exported by `hephaestus train init` with the training tests' tokenizer."""
    tmp = tmp_path_factory.mktemp("model")
    tok = trainfx.build_tokenizer(tmp / "tok")
    cfg = yaml.safe_load((REPO_ROOT / "examples" / "train" / "init.yaml").read_text())
    cfg["output_dir"], cfg["model"]["tokenizer_dir"] = str(tmp / "base"), str(tok)
    (tmp / "init.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "init", "--config", str(tmp / "init.yaml"), "--quiet"]) == 0
    return tmp


def test_train_init_cpt_sft(cli, base_model, trainfx, tmp_path):
    assert (base_model / "base" / "hf" / "config.json").exists()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model / "tok")
    shards = trainfx.write_shards(tmp_path / "shards", [tok(trainfx.TEXT * 6)["input_ids"]] * 20,
                                  tok.eos_token_id, len(tok), base_model / "tok")  # fmt: skip
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in trainfx.sft_rows(12)))
    for stage, data, parent in (("cpt", {"shards_dir": str(shards)}, base_model / "base"),
                                ("sft", {"sft_path": str(sft)}, tmp_path / "cpt")):  # fmt: skip
        cfg = yaml.safe_load((REPO_ROOT / "examples" / "train" / f"{stage}.yaml").read_text())
        cfg["output_dir"], cfg["model"]["name_or_path"] = str(tmp_path / stage), str(parent / "hf")
        cfg["data"].update(data, seq_len=32 if stage == "cpt" else 1024, holdout=2)
        cfg["schedule"].update(max_steps=2, eval_every=0, checkpoint_every=0)
        (tmp_path / f"{stage}.yaml").write_text(yaml.safe_dump(cfg))
        r = cli("train", stage, "--config", tmp_path / f"{stage}.yaml", "--quiet")
        assert r.rc == 0, r.err
        assert f"model (Hugging Face format): {tmp_path / stage / 'hf'}" in r.out
    assert "LoRA adapter alone" in r.out and (tmp_path / "sft" / "adapter").is_dir()


def test_example_configs_load(cli):
    from training import load_config

    for path in sorted((REPO_ROOT / "examples" / "train").glob("*.yaml")):
        assert load_config(path).output_dir.startswith(".hephaestus/cli/models/"), path
    assert "examples/train/cpt.yaml" in cli("train", "--help").out


def test_train_bad_config(cli, fails, tmp_path):
    fails(cli("train", "cpt", "--config", tmp_path / "missing.yaml"), 2, "no such file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\nschedule: {max_stepz: 3}\n")
    fails(cli("train", "cpt", "--config", bad), 1, "unknown key(s) ['max_stepz']", "max_steps")
    fails(cli("train", "finetune", "--config", bad), 2, "invalid choice")


def test_eval_bfcl(cli, fails, base_model, tmp_path, bfcl_environments):
    model = base_model / "base"
    r = cli("eval", "bfcl", "--model", model / "hf", "--data", BFCL, "--categories", "simple_python",
            "--limit", "1", "--max-new-tokens", "4", "--out", tmp_path / "ev")  # fmt: skip
    assert r.rc == 0, r.err
    assert "simple_python" in r.out and (tmp_path / "ev" / "results.json").exists()
    # multi-turn with a 1,024-position model: every conversation outgrows it at its first prompt, and says so;
    # --multi-turn-limit caps the conversations apart from the single-turn items
    r = cli("eval", "bfcl", "--model", model / "hf", "--data", BFCL, "--categories", "simple_python",
            "multi_turn_base", "--environments", bfcl_environments, "--limit", "2", "--multi-turn-limit", "1",
            "--max-new-tokens", "4", "--out", tmp_path / "mt")  # fmt: skip
    assert r.rc == 0, r.err
    assert "multi-turn conversations ended early: prompt_too_long 1" in r.out
    counts = {
        c: s["n"] for c, s in json.loads((tmp_path / "mt" / "results.json").read_text())["categories"].items()
    }
    assert counts == {"simple_python": 2, "multi_turn_base": 1}
    fails(cli("eval", "bfcl", "--model", "/missing"), 2, "no such file or directory")
    fails(cli("eval", "bfcl", "--model", model, "--data", BFCL), 1, "a training output", str(model / "hf"))
    fails(cli("eval", "bfcl", "--model", tmp_path, "--data", BFCL), 1, "not a Hugging Face model directory")
    fails(cli("eval", "bfcl", "--model", model / "hf", "--data", tmp_path), 1, "BFCL data not found")
    fails(cli("eval", "bfcl", "--model", model / "hf", "--limit", "0"), 2, "not a positive integer")
