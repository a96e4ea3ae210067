"""Corpus assets: tokenizer, stage-1 and stage-2 packed mixtures, the SFT set, held-out texts."""

from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.common import png_markdown, start_mlflow_run
from assets.factory import stage_asset
from assets.profile import resolve_repo_path
from assets.resources import ForgeResource, MlflowResource
from assets.warehouse import mart_key
from forge.corpus.build import HELDOUT_TEXTS_STAGE, SFT_DATASET_STAGE, HeldoutTextsConfig, SftDatasetConfig
from forge.corpus.mixtures import MIXTURE_STAGE
from forge.corpus.plots import plot_mixture
from forge.corpus.tokenizer import TOKENIZER_STAGE
from forge.text.dedup import CANDIDATES_TABLE, NEAR_DEDUP_STAGE
from forge.text.retrieval import RETRIEVAL_STAGE, retrieval_metrics

CORPUS_DOCS = mart_key("fct_corpus_documents")


def tokenizer_dir(profile: ForgeResource) -> Path:
    return profile.paths.corpus / "tokenizer"


@asset(
    key=AssetKey("tokenizer"),
    group_name="corpus",
    deps=[CORPUS_DOCS],
    kinds={"python", "tokenizers"},
    description="Byte-level BPE trained on the corpus (or the base model's tokenizer, adapted), "
    "with the tool-aware chat template.",
)
def tokenizer(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    wh, out = profile.paths.warehouse, tokenizer_dir(profile)
    cfg = profile.settings.tokenizer
    return stage_asset(context, TOKENIZER_STAGE, cfg, out, warehouse=wh, tables=["fct_corpus_documents"])


def _mixture_asset(stage: str, description: str):
    # stage 1 may take its ratios from the mixing-ratio law (`ratios: from_law`)
    law = [AssetKey(["research", "mixing_law"])] if stage == "stage1" else []

    @asset(
        key=AssetKey(f"cpt_{stage}_shards"),
        group_name="corpus",
        deps=[CORPUS_DOCS, AssetKey("tokenizer"), *law],
        kinds={"python", "numpy"},
        description=description,
    )
    def _asset(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
        from assets.research import resolve_mixture

        cfg = resolve_mixture(profile, getattr(profile.settings.mixture, stage))
        tok, out = tokenizer_dir(profile), profile.paths.corpus / f"cpt_{stage}_shards"
        plot = mixture_plot_path(profile, stage)

        def composition(meta: dict[str, Any]) -> dict[str, Any]:
            drawn = plot_mixture(out, plot, f"stage {stage[-1]} mixture: tokens per category and source")
            return {**meta, "composition_md": png_markdown(drawn, "mixture composition")}

        return stage_asset(
            context,
            MIXTURE_STAGE,
            cfg,
            out,
            upstream=[tok],
            warehouse=profile.paths.warehouse,
            tables=["fct_corpus_documents"],
            then=composition,
            tokenizer_dir=tok,
        )

    return _asset


def mixture_plot_path(profile: ForgeResource, stage: str) -> Path:
    """The composition picture of ``cpt_<stage>_shards`` (also logged on the training run that reads it)."""
    return profile.paths.root / "plots" / f"cpt_{stage}_shards.png"


cpt_stage1_shards = _mixture_asset(
    "stage1",
    "Stage-1 mixture (agent : code : text by the configured ratios, default 1:1:1), packed "
    "into token shards with a manifest of tokens per category.",
)
cpt_stage2_shards = _mixture_asset("stage2", "Stage-2 mixture: the high-quality seed agent data, packed.")


@asset(
    key=AssetKey("sft_dataset"),
    group_name="corpus",
    deps=[mart_key("fct_sft_examples")],
    kinds={"python", "jsonl"},
    description="fct_sft_examples as JSONL (messages + tools), train and validation splits.",
)
def sft_dataset(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    wh, out = profile.paths.warehouse, profile.paths.corpus / "sft"
    return stage_asset(
        context, SFT_DATASET_STAGE, SftDatasetConfig(), out, warehouse=wh, tables=["fct_sft_examples"]
    )


@asset(
    key=AssetKey("heldout_texts"),
    group_name="corpus",
    deps=[CORPUS_DOCS],
    kinds={"python", "jsonl"},
    description="Validation-split text, code and agent documents for perplexity (never packed for training).",
)
def heldout_texts(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    n = profile.settings.evaluation.perplexity.max_docs_per_category
    wh, out = profile.paths.warehouse, profile.paths.corpus / "heldout_texts"
    cfg = HeldoutTextsConfig(max_docs_per_category=n)
    return stage_asset(context, HELDOUT_TEXTS_STAGE, cfg, out, warehouse=wh, tables=["fct_corpus_documents"])


@asset(
    key=AssetKey(["raw", "near_duplicate_clusters"]),
    group_name="corpus",
    deps=[mart_key(CANDIDATES_TABLE)],
    kinds={"python", "numpy"},
    description="Near-duplicate clusters of the corpus candidates (MinHash LSH, forge.text.dedup), "
    "as Parquet that dbt reads: int_deduplicated_corpus_documents drops every member but the kept one.",
)
def near_duplicate_clusters(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    # Between two dbt models: Dagster runs the dbt models upstream of it, then it, then the rest.
    # It only reads the warehouse (read-only) and writes Parquet: dbt stays the file's one writer.
    cfg, out = profile.settings.near_dedup, profile.paths.raw("near_duplicate_clusters")
    wh = profile.paths.warehouse
    return stage_asset(context, NEAR_DEDUP_STAGE, cfg, out, warehouse=wh, tables=[CANDIDATES_TABLE])


#: the seed (agent documents with is_seed) and the general documents the classifier scores
GENERAL_TABLES = ("code_documents", "text_documents")


@asset(
    key=AssetKey(["raw", "retrieval_scores"]),
    group_name="corpus",
    deps=[AssetKey(["raw", t]) for t in ("agent_documents", *GENERAL_TABLES)],
    kinds={"python", "scikitlearn", "mlflow"},
    description="Seed -> retrieval (forge.text.retrieval): a classifier trained on the seed agent "
    "documents against general ones scores every code/text document out of fold; those above the "
    "threshold chosen on the labelled sample's precision-recall curve become the corpus category "
    "'retrieved' (fct_corpus_documents, fct_retrieved_documents). PR curve and metrics in MLflow.",
)
def retrieval_scores(
    context: AssetExecutionContext, profile: ForgeResource, mlflow: MlflowResource
) -> MaterializeResult:
    cfg, out = profile.settings.retrieval, profile.paths.raw("retrieval_scores")
    seed = [profile.paths.raw("agent_documents")]
    general = [(t, profile.paths.raw(t)) for t in GENERAL_TABLES]
    labelled = resolve_repo_path(cfg.labelled)

    def log_run(meta: dict[str, Any]) -> dict[str, Any]:
        # one MLflow run per build: the PR curve (PNG + JSON) and the labelled sample's numbers
        if meta.get("skipped"):
            return meta
        from assets.tracking import active_run

        uri, run_id = start_mlflow_run(context, profile, mlflow, "retrieval")
        import mlflow as mlf

        with active_run(uri, run_id):
            mlf.log_params(
                {
                    "rule": cfg.threshold.rule,
                    "min_precision": cfg.threshold.min_precision,
                    "max_chars": cfg.features.max_chars,
                    "ngram_max": cfg.features.ngram_max,
                    "C": cfg.C,
                    "folds": cfg.folds,
                    "threshold_source": meta["threshold_source"],
                }
            )
            mlf.log_metrics(retrieval_metrics(meta))
            for name in ("pr_curve.png", "pr_curve.json"):
                mlf.log_artifact(str(out / name), artifact_path="retrieval")
        return {**meta, "mlflow_run_id": run_id}

    result = stage_asset(
        context,
        RETRIEVAL_STAGE,
        cfg,
        out,
        upstream=[*seed, *(d for _, d in general)],
        sources=[labelled] if labelled else [],
        then=log_run,
        seed_dirs=seed,
        general=general,
        labelled_path=labelled,
    )
    png = out / "pr_curve.png"
    if not png.exists():
        return result
    meta = {**(result.metadata or {}), "pr_curve": MetadataValue.md(png_markdown(png, "precision-recall"))}
    return MaterializeResult(metadata=meta, data_version=result.data_version)


corpus_assets = [
    near_duplicate_clusters,
    retrieval_scores,
    tokenizer,
    cpt_stage1_shards,
    cpt_stage2_shards,
    sft_dataset,
    heldout_texts,
]
