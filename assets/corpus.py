"""Corpus assets: tokenizer, stage-1 and stage-2 packed mixtures, the SFT set, held-out texts."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

import forge.corpus.build
import forge.corpus.packing
import forge.corpus.tokenizer
from assets.common import materialize_stage
from assets.resources import ForgeResource
from assets.warehouse import mart_key
from forge.core.io import fingerprint
from forge.core.markers import upstream_fingerprint
from forge.core.warehouse import code_digest, table_fingerprint

CORPUS_DOCS = mart_key("fct_corpus_documents")


def tokenizer_dir(profile: ForgeResource):
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
    cfg = profile.section("tokenizer") or {}
    wh, out = profile.paths.warehouse, tokenizer_dir(profile)
    fp = fingerprint(
        cfg,
        table_fingerprint(wh, "fct_corpus_documents"),
        code_digest(forge.corpus.tokenizer, forge.corpus.build),
    )
    return materialize_stage(context, out, fp, lambda: forge.corpus.build.build_tokenizer(wh, cfg, out))


def _mixture_asset(stage: str, description: str):
    @asset(
        key=AssetKey(f"cpt_{stage}_shards"),
        group_name="corpus",
        deps=[CORPUS_DOCS, AssetKey("tokenizer")],
        kinds={"python", "numpy"},
        description=description,
    )
    def _asset(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
        cfg = profile.section("mixture", stage) or {}
        wh, tok, out = (
            profile.paths.warehouse,
            tokenizer_dir(profile),
            profile.paths.corpus / f"cpt_{stage}_shards",
        )
        fp = fingerprint(
            cfg,
            table_fingerprint(wh, "fct_corpus_documents"),
            upstream_fingerprint(tok),
            code_digest(forge.corpus.packing, forge.corpus.build),
        )
        return materialize_stage(
            context, out, fp, lambda: forge.corpus.build.build_packed_mixture(wh, tok, cfg, out)
        )

    return _asset


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
    fp = fingerprint(table_fingerprint(wh, "fct_sft_examples"), code_digest(forge.corpus.build))
    return materialize_stage(context, out, fp, lambda: forge.corpus.build.export_sft_dataset(wh, out))


@asset(
    key=AssetKey("heldout_texts"),
    group_name="corpus",
    deps=[CORPUS_DOCS],
    kinds={"python", "jsonl"},
    description="Validation-split text, code and agent documents for perplexity (never packed for training).",
)
def heldout_texts(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    n = int(profile.section("evaluation", "perplexity", "max_docs_per_category") or 50)
    wh, out = profile.paths.warehouse, profile.paths.corpus / "heldout_texts"
    fp = fingerprint(n, table_fingerprint(wh, "fct_corpus_documents"), code_digest(forge.corpus.build))
    return materialize_stage(context, out, fp, lambda: forge.corpus.build.export_heldout_texts(wh, n, out))


corpus_assets = [tokenizer, cpt_stage1_shards, cpt_stage2_shards, sft_dataset, heldout_texts]
