"""The recipe study on the `micro` profile: the research group and every ablation checkpoint's
evaluation materialize in the graph, no held-out text is in a training set, and
bench/recipe_study.py prepares its data from the same build and runs the whole study on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ARMS = ("base", "cpt1", "cpt2", "control", "sft_base", "sft_cpt1", "sft_cpt2", "sft_control")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("research_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEPHAESTUS_HOME", str(home))
    mp.setenv("HEPHAESTUS_PROFILE", "micro")
    mp.setenv("DAGSTER_HOME", str(tmp_path_factory.mktemp("dagster_home")))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    from dagster import DagsterInstance

    from assets.profile import Paths
    from orchestration.definitions import defs

    result = defs.get_job_def("full_pipeline").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    mats = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        mats[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    yield {"home": home, "paths": Paths(home=home, profile="micro"), "mats": mats}
    mp.undo()


def test_no_heldout_text_in_any_training_set(built):
    paths = built["paths"]
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        # one rule: a trajectory's document and its SFT example share a key, hence a split
        mismatched = q(
            "select c.doc_id from fct_corpus_documents c join fct_sft_examples s using (split_key) "
            "where c.split <> s.split"
        )
        assert mismatched == []
        n_shared = q("select count(*) from fct_corpus_documents c join fct_sft_examples s using (split_key)")
        assert n_shared[0][0] > 0  # the join is not vacuous
        assert q(
            "select count(*) from fct_corpus_documents v join fct_corpus_documents t using (text) "
            "where v.split = 'validation' and t.split = 'train'"
        ) == [(0,)]
        train_keys = {r[0] for r in q("select split_key from fct_sft_examples where split = 'train'")}
        split_of = dict(q("select doc_id, split_key from fct_corpus_documents"))
    heldout = [
        json.loads(line) for p in (paths.corpus / "heldout_texts").glob("*.jsonl") for line in p.open()
    ]
    assert heldout
    assert not {split_of[r["doc_id"]] for r in heldout} & train_keys


def test_research_group_and_every_checkpoint_evaluated(built):
    mats, paths = built["mats"], built["paths"]
    law = json.loads((paths.root / "research" / "mixing_law" / "law.json").read_text())
    assert 0.0 <= law["chosen"]["share"] <= 0.5 and law["chosen"]["paper_share"] == 0.36
    assert "skipped" not in mats["research/mixing_grid"]
    for arm in ARMS:
        meta = mats[f"ablation_eval/{arm}"]
        assert meta["alias_uri"].endswith(f"@{arm}"), meta
        assert "loglik_bfcl.nll" in meta and "ppl.text" in meta
    table = (paths.root / "research" / "ablation_comparison" / "comparison.md").read_text()
    assert all(f"| {arm} |" in table for arm in ARMS)
    assert (paths.root / "research" / "ablation_comparison" / "loss_curves.png").stat().st_size > 1000
    # the control trained on at least the tokens of CPT1 + CPT2
    from training.config import load_config
    from training.research import stage_tokens

    cfg = {a: load_config(paths.models / "ablation" / a / "config.json") for a in ("cpt1", "cpt2", "control")}
    assert stage_tokens(cfg["control"]) >= stage_tokens(cfg["cpt1"]) + stage_tokens(cfg["cpt2"])


def test_recipe_study_bench_runs_on_the_cpu(built, tmp_path):
    data, out, work = tmp_path / "data", tmp_path / "out", tmp_path / "work"
    script = str(REPO / "bench" / "recipe_study.py")
    prep = subprocess.run(
        [sys.executable, script, "prepare", "--out", str(data), "--profile", "micro", "--home", str(built["home"])],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr[-3000:]
    cmd = [
        sys.executable,
        script,
        "run",
        "--data",
        str(data),
        "--out",
        str(out),
        "--work",
        str(work),
        "--device",
        "cpu",
    ]
    # a budget of 0 s: no step starts, the partial results say so, exit 3
    stopped = subprocess.run([*cmd, "--budget-s", "0"], capture_output=True, text=True, cwd=REPO)
    assert stopped.returncode == 3, stopped.stderr[-3000:]
    assert "INCOMPLETE" in (out / "results.md").read_text()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and {f"eval_{a}" for a in ARMS} <= set(results["steps"])
    md = (out / "results.md").read_text()
    assert "Mixing-ratio law" in md and all(f"| {a} |" in md for a in ARMS)
    assert (out / "law.png").exists() and (out / "loss_curves.png").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)  # resumes: nothing redone
    assert again.returncode == 0 and "done in" not in again.stdout
