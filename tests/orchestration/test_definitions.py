"""Snapshot of the Definitions: an accidental change to the graph shows up here."""

import pytest

from orchestration.definitions import defs

ABLATION_ARMS = ("base", "cpt1", "cpt2", "control", "sft_base", "sft_cpt1", "sft_cpt2", "sft_control")
#: One ingest asset per API source; stg_forge__api_operations unions them with the crawl's.
API_SOURCE_ASSETS = ("raw/openapi_operations", "raw/python_module_operations", "raw/hub_doc_operations")
EXPECTED_PYTHON_ASSETS = {
    *API_SOURCE_ASSETS,
    "raw/code_documents",
    "raw/text_documents",
    "raw/bfcl_items",
    "raw/humaneval_items",
    "raw/trajectories",
    "raw/agent_documents",
    "raw/near_duplicate_clusters",
    "raw/retrieval_scores",
    "tokenizer",
    "cpt_stage1_shards",
    "cpt_stage2_shards",
    "sft_dataset",
    "heldout_texts",
    "base_model",
    "cpt_stage1_model",
    "cpt_stage2_model",
    "sft_model",
    "unseen_api_benchmark",
    "bfcl_eval",
    "unseen_api_eval",
    "humaneval_eval",
    "raw/dataset_trajectories",
    "raw/documents",
    "raw/web_docs_operations",
    "general_retention",
    "scorecard",
    # the recipe study: the ablation's checkpoints, one evaluation per checkpoint, the law
    *(f"ablation/{arm}" for arm in ABLATION_ARMS),
    *(f"ablation_eval/{arm}" for arm in ABLATION_ARMS),
    "research/general_shards",
    "research/mixing_grid",
    "research/mixing_law",
    "research/ablation_comparison",
}
EXPECTED_DBT_MODELS = {
    "stg_forge__api_operations",
    "stg_forge__trajectories",
    "stg_forge__agent_documents",
    "stg_forge__code_documents",
    "stg_forge__text_documents",
    "stg_bfcl__items",
    "stg_humaneval__items",
    "stg_forge__dropped_rows",
    "stg_forge__documents",
    "int_unioned_corpus_candidates",
    "int_deduplicated_corpus_documents",
    "int_exact_deduplicated_corpus_documents",
    "stg_forge__near_duplicate_clusters",
    "fct_near_duplicate_clusters",
    "int_duplicate_corpus_documents",
    "int_heldout_api_operations",
    "int_ranked_api_operations",
    "dim_apis",
    "fct_duplicate_apis",
    "fct_corpus_documents",
    "fct_sft_examples",
    "fct_eval_holdout",
    "fct_contamination",
    "fct_removed_documents",
    "fct_filtered_documents",
    "fct_drops_by_reason",
    "stg_forge__retrieval_scores",
    "fct_retrieved_documents",
}
EXPECTED_GX_CHECKS = {
    "gx_fct_corpus_documents",
    "gx_fct_sft_examples",
    "gx_dim_apis",
    "gx_fct_eval_holdout",
    "gx_fct_contamination",
    "gx_fct_near_duplicate_clusters",
    "gx_fct_removed_documents",
    "gx_fct_duplicate_apis",
    "gx_fct_retrieved_documents",
}


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def test_asset_keys_snapshot(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == EXPECTED_PYTHON_ASSETS | EXPECTED_DBT_MODELS


def test_groups(graph):
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {groups[k] for k in EXPECTED_DBT_MODELS} == {"warehouse"}
    for key in (*API_SOURCE_ASSETS, "raw/web_docs_operations"):
        assert groups[key] == "ingest", key
    assert groups["sft_model"] == "training"
    assert groups["scorecard"] == "evaluation"


def test_lineage_runs_from_the_crawl_to_the_registered_model(graph):
    from dagster import AssetKey

    upstream = graph.get(AssetKey("scorecard")).parent_keys
    seen, frontier = set(), set(upstream)
    while frontier:
        key = frontier.pop()
        seen.add(key.to_user_string())
        frontier |= set(graph.get(key).parent_keys) - {AssetKey.from_user_string(s) for s in seen}
    for key in (*API_SOURCE_ASSETS, "fct_corpus_documents", "tokenizer", "cpt_stage1_model", "sft_model"):
        assert key in seen, key
    # dbt sources map onto the ingest assets (not onto separate source assets): one per API source
    stg = graph.get(AssetKey("stg_forge__api_operations"))
    api_sources = {AssetKey.from_user_string(k) for k in (*API_SOURCE_ASSETS, "raw/web_docs_operations")}
    assert api_sources <= set(stg.parent_keys), stg.parent_keys
    assert AssetKey(["raw", "api_operations"]) not in stg.parent_keys


def test_drops_marts_run_after_every_asset_that_writes_drops(graph):
    """stg_forge__dropped_rows reads raw/_dropped/*.parquet by path; its meta.reads_assets makes every
    writer of those files its parent (else its marts could be built before the ingest finished)."""
    from dagster import AssetKey

    keys = graph.get_all_asset_keys()
    parents = graph.get(AssetKey("stg_forge__dropped_rows")).parent_keys
    writers = {AssetKey(["raw", name]) for name in ("code_documents", "text_documents", "agent_documents",
                                                    "documents", "dataset_trajectories")}  # fmt: skip
    assert writers <= set(parents) <= set(keys), parents
    assert AssetKey("stg_forge__dropped_rows") in graph.get(AssetKey("fct_drops_by_reason")).parent_keys
    # the API dedup: one ranking model feeds both the dimension and the list of merged-away rows
    ranked = AssetKey("int_ranked_api_operations")
    assert graph.get(ranked).parent_keys == {AssetKey("stg_forge__api_operations")}
    assert ranked in graph.get(AssetKey("dim_apis")).parent_keys
    assert ranked in graph.get(AssetKey("fct_duplicate_apis")).parent_keys


def test_near_dedup_sits_between_exact_dedup_and_the_corpus(graph):
    from dagster import AssetKey

    clusters = AssetKey(["raw", "near_duplicate_clusters"])
    assert graph.get(clusters).parent_keys == {AssetKey("int_exact_deduplicated_corpus_documents")}
    assert clusters in graph.get(AssetKey("stg_forge__near_duplicate_clusters")).parent_keys
    assert (
        AssetKey("stg_forge__near_duplicate_clusters")
        in graph.get(AssetKey("int_deduplicated_corpus_documents")).parent_keys
    )
    # the dbt assets run in two steps around it: the whole graph still makes one job
    job = defs.resolve_job_def("full_pipeline")
    steps = {node.name for node in job.graph.node_defs}
    assert any(name.startswith("warehouse_models") for name in steps), steps


def test_the_corpus_reads_the_deduplicated_operations(graph):
    """Synthesis and agent documents read dim_apis (a dbt mart), not the raw API tables, so a copy
    merged across versions is rendered once; the dbt models run before and after them."""
    from dagster import AssetKey

    dim_apis = AssetKey("dim_apis")
    for key in ("raw/trajectories", "raw/agent_documents"):
        parents = graph.get(AssetKey.from_user_string(key)).parent_keys
        assert dim_apis in parents, (key, parents)
        assert not parents & {AssetKey.from_user_string(k) for k in API_SOURCE_ASSETS}, (key, parents)
    assert (
        AssetKey(["raw", "agent_documents"]) in graph.get(AssetKey("stg_forge__agent_documents")).parent_keys
    )
    job = defs.resolve_job_def("full_pipeline")  # plans: the dbt step is split around the cycle
    assert sum(node.name == "warehouse_models" for node in job.graph.node_defs) >= 2


def test_gx_checks_are_blocking_and_on_the_marts(graph):
    checks = {}
    for key in graph.asset_check_keys:
        checks[key.name] = key.asset_key.to_user_string()
    assert EXPECTED_GX_CHECKS <= set(checks)
    for name in EXPECTED_GX_CHECKS:
        assert checks[name] == name.removeprefix("gx_")
    from assets.quality import gx_checks

    for check_def in gx_checks:
        for spec in check_def.check_specs:
            assert spec.blocking, spec.name


def test_dbt_tests_are_checks_too(graph):
    names = {key.name for key in graph.asset_check_keys}
    assert any(n.startswith("unique_fct_corpus_documents_doc_id") for n in names)


def test_jobs_and_schedules():
    assert {j.name for j in defs.jobs} >= {"full_pipeline", "weekly_rebuild"}
    schedule = defs.resolve_schedule_def("weekly_rebuild_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.job_name == "weekly_rebuild"
    job = defs.resolve_job_def("weekly_rebuild")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert set(API_SOURCE_ASSETS) <= selected and "scorecard" in selected
    assert {"raw/documents", "tokenizer", "sft_model"} <= selected


def test_resources_are_configurable():
    assert set(defs.resources) >= {"profile", "mlflow", "dbt", "pipes_subprocess_client"}


def test_research_group_feeds_the_stage1_mixture(graph):
    from dagster import AssetKey

    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {groups[f"research/{n}"] for n in ("mixing_grid", "mixing_law", "ablation_comparison")} == {
        "research"
    }
    # `ratios: from_law` flows through the graph: the law is upstream of stage 1's shards
    assert AssetKey(["research", "mixing_law"]) in graph.get(AssetKey("cpt_stage1_shards")).parent_keys
    # every arm from the same base; each checkpoint has its own evaluation
    for arm in ABLATION_ARMS:
        parents = graph.get(AssetKey(["ablation_eval", arm])).parent_keys
        assert AssetKey(["ablation", arm]) in parents, arm
    assert AssetKey(["ablation", "base"]) in graph.get(AssetKey(["ablation", "control"])).parent_keys
    assert AssetKey(["ablation", "cpt1"]) in graph.get(AssetKey(["ablation", "sft_cpt1"])).parent_keys


def test_retrieval_reads_the_seed_and_general_documents_and_feeds_the_corpus(graph):
    """The seed classifier scores the raw general documents (no dbt model upstream, so it runs
    with the ingest), and its scores reach the corpus mart and the retrieved-documents mart."""
    from dagster import AssetKey

    scores = AssetKey(["raw", "retrieval_scores"])
    assert graph.get(scores).parent_keys == {
        AssetKey(["raw", t]) for t in ("agent_documents", "code_documents", "text_documents")
    }
    stg = AssetKey("stg_forge__retrieval_scores")
    assert scores in graph.get(stg).parent_keys
    for mart in ("fct_corpus_documents", "fct_retrieved_documents"):
        assert stg in graph.get(AssetKey(mart)).parent_keys, mart
