"""Research assets: the mixing-ratio law that feeds the stage-1 mixture, and the ablation's
comparison across checkpoints.

``research/mixing_grid`` trains small models from scratch over agent shares x model sizes at a
fixed token budget and scores each on the held-out texts per category; ``research/mixing_law``
fits the law, picks the share by the profile's rule and draws it beside the paper's 36%; the
stage-1 mixture reads that share when its profile says ``ratios: from_law``.
``research/general_shards`` is the general (code + text) mixture the ablation's base is
pretrained on; ``research/ablation_comparison`` tabulates every checkpoint's scores (with
intervals and retention against the base) and plots the arms' loss curves.

With ``research.enabled: false`` (the ``default`` profile: ``make demo`` stays within its time)
every research asset reports a visible skip and writes nothing. The library calls live in
``training.research`` (plan, law, plots), ``evaluation.checkpoint`` and ``forge.corpus.mixtures``.
"""

import base64
import json
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.common import materialize_stage, start_fresh_unless_resuming, start_mlflow_run
from assets.factory import input_fingerprint, stage_asset
from assets.resources import ForgeResource, MlflowResource
from assets.tracking import active_run
from assets.warehouse import mart_key
from forge.core.io import atomic_write_text
from forge.core.stage import code_fingerprint
from forge.corpus.mixtures import MIXTURE_STAGE, MixtureConfig
from training.research import (
    ARMS,
    fit_and_choose,
    grid_run_config,
    law_markdown,
    laws_from_summary,
    plot_law,
    ratios_for_share,
    run_grid,
)

GROUP = "research"
CORPUS_DOCS = mart_key("fct_corpus_documents")
#: small corpora: the research mixtures may pass over a category this many times to fill its share
REPEAT_EPOCHS = 100.0


def research_key(name: str) -> AssetKey:
    return AssetKey([GROUP, name])


def research_dir(profile: ForgeResource, name: str) -> Path:
    return profile.paths.root / GROUP / name


def skipped_if_disabled(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult | None:
    """The visible skip of a research asset when the profile turns the study off."""
    if profile.settings.research.enabled:
        return None
    reason = f"research.enabled is false in profile {profile.settings.name!r}: the study is not run"
    context.log.info(reason)
    return MaterializeResult(metadata={"skipped": reason})


def png_markdown(path: Path, title: str) -> str:
    """A PNG inlined as Markdown (Dagster renders it in the asset's metadata)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"**{title}**\n\n![{title}](data:image/png;base64,{data})"


def law_share(profile: ForgeResource) -> float:
    """The share ``research/mixing_law`` chose; a clear error when it has not been fitted."""
    law = research_dir(profile, "mixing_law") / "law.json"
    if not law.exists():
        raise FileNotFoundError(
            f"mixture ratios 'from_law' need the mixing-ratio law ({law}); materialize "
            "research/mixing_law with research.enabled: true, or set explicit ratios"
        )
    return float(json.loads(law.read_text())["chosen"]["share"])


def resolve_mixture(profile: ForgeResource, cfg: MixtureConfig) -> MixtureConfig:
    """``ratios: from_law`` replaced by the ratios of the law's chosen share; else ``cfg``."""
    if cfg.ratios != "from_law":
        return cfg
    return cfg.model_copy(update={"ratios": ratios_for_share(law_share(profile))})


@asset(
    key=research_key("general_shards"),
    group_name=GROUP,
    deps=[CORPUS_DOCS, AssetKey("tokenizer")],
    kinds={"python", "numpy"},
    description="The general mixture (code and text only, 1:1) the ablation's base is pretrained on, packed.",
)
def general_shards(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    skipped = skipped_if_disabled(context, profile)
    if skipped is not None:
        return skipped
    research = profile.settings.research
    cfg = MixtureConfig(
        ratios={"code": 1.0, "text": 1.0},
        token_budget=research.ablation.general_tokens,
        max_epochs=REPEAT_EPOCHS,
    )
    tok = profile.paths.corpus / "tokenizer"
    return stage_asset(
        context,
        MIXTURE_STAGE,
        cfg,
        research_dir(profile, "general_shards"),
        upstream=[tok],
        warehouse=profile.paths.warehouse,
        tables=["fct_corpus_documents"],
        tokenizer_dir=tok,
    )


def _heldout_loss(texts_dir: Path, seq_len: int):
    """``hf_dir -> {category: nats per token}`` on the held-out texts (validation split)."""

    def loss(hf_dir: Path) -> dict[str, float]:
        from contracts.io import read_jsonl
        from evaluation.bfcl.runner import load_model
        from evaluation.perplexity import perplexity

        model, tok = load_model(hf_dir)
        out = {}
        for path in sorted(texts_dir.glob("*.jsonl")):
            texts = [r["text"] for r in read_jsonl(path)]
            if texts:
                out[path.stem] = float(perplexity(model, tok, texts, seq_len=seq_len)["nll_per_token"])
        return out

    return loss


@asset(
    key=research_key("mixing_grid"),
    group_name=GROUP,
    deps=[CORPUS_DOCS, AssetKey("tokenizer"), AssetKey("heldout_texts")],
    kinds={"pytorch"},
    description="Small models from scratch over agent shares x model sizes at a fixed token budget; "
    "held-out loss per category for each run.",
    pool="trainer",
)
def mixing_grid(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    skipped = skipped_if_disabled(context, profile)
    if skipped is not None:
        return skipped
    research, out = profile.settings.research, research_dir(profile, "mixing_grid")
    tok, texts = profile.paths.corpus / "tokenizer", profile.paths.corpus / "heldout_texts"
    model, training = profile.config.get("model"), profile.config.get("training")
    seq_len = profile.settings.evaluation.perplexity.seq_len
    fp = input_fingerprint(
        code=code_fingerprint("training.research", "training.stages", "evaluation.perplexity"),
        config={"grid": research.grid.model_dump(), "model": model, "training": training, "seq_len": seq_len},
        upstream=[tok, texts],
        warehouse=profile.paths.warehouse,
        tables=["fct_corpus_documents"],
    )

    def build() -> dict[str, Any]:
        from training.stages import run as run_stage

        def pack(share: float, shards: Path) -> None:
            budget = research.grid.mixture_tokens or research.grid.train_tokens
            cfg = MixtureConfig(ratios=ratios_for_share(share), token_budget=budget, max_epochs=REPEAT_EPOCHS)
            MIXTURE_STAGE.run(cfg, warehouse=profile.paths.warehouse, tokenizer_dir=tok, out_dir=shards)

        def make_config(run, shards: Path, output_dir: Path):
            return grid_run_config(
                model, training, research.grid, run.size,
                output_dir=output_dir, tokenizer_dir=tok, shards_dir=shards,
            )  # fmt: skip

        # finished grid runs are resumed after a kill, but only those of these inputs
        work = out / "work"
        start_fresh_unless_resuming(work, fp)
        records = run_grid(
            research.grid,
            work,
            pack=pack,
            train=lambda cfg: run_stage("cpt", cfg),
            heldout_loss=_heldout_loss(texts, seq_len),
            make_config=make_config,
            log=context.log.info,
        )
        atomic_write_text(out / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        return {"n_runs": len({r["run"] for r in records}), "n_records": len(records)}

    return materialize_stage(context, out, fp, build)


@asset(
    key=research_key("mixing_law"),
    group_name=GROUP,
    deps=[research_key("mixing_grid")],
    kinds={"python", "scipy"},
    description="The mixing-ratio law fitted to the grid, the chosen agent share by the profile's rule, "
    "drawn beside the paper's 36%.",
)
def mixing_law(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    skipped = skipped_if_disabled(context, profile)
    if skipped is not None:
        return skipped
    research, out = profile.settings.research, research_dir(profile, "mixing_law")
    grid = research_dir(profile, "mixing_grid")
    fp = input_fingerprint(
        code=code_fingerprint("training.research"),
        config={"tolerance": research.general_tolerance},
        upstream=[grid],
    )

    def build() -> dict[str, Any]:
        records = [json.loads(x) for x in (grid / "records.jsonl").read_text().splitlines()]
        law = fit_and_choose(records, research.general_tolerance)
        atomic_write_text(out / "law.json", json.dumps(law, indent=2) + "\n")
        plot_law(records, laws_from_summary(law["laws"]), law["chosen"], out / "law.png")
        table = law_markdown(law, records)
        atomic_write_text(out / "law.md", table + "\n")
        return {"chosen_share": law["chosen"]["share"], "paper_share": law["chosen"]["paper_share"], **law}

    result = materialize_stage(context, out, fp, build)
    return _with_markdown(result, out / "law.md", out / "law.png", "mixing-ratio law")


def _with_markdown(result: MaterializeResult, md: Path, png: Path | None, title: str) -> MaterializeResult:
    meta = dict(result.metadata or {})
    if md.exists():
        meta["table"] = MetadataValue.md(md.read_text())
    if png is not None and png.exists():
        meta["plot"] = MetadataValue.md(png_markdown(png, title))
    return MaterializeResult(metadata=meta, data_version=result.data_version)


def eval_key(arm: str) -> AssetKey:
    return AssetKey(["ablation_eval", arm])


@asset(
    key=research_key("ablation_comparison"),
    group_name=GROUP,
    deps=[eval_key(arm.name) for arm in ARMS],
    kinds={"mlflow", "matplotlib"},
    description="Every ablation checkpoint x every metric, with bootstrap intervals and retention against "
    "the base; the arms' loss curves. Asset metadata and an MLflow run's artifacts.",
)
def ablation_comparison(
    context: AssetExecutionContext, profile: ForgeResource, mlflow: MlflowResource
) -> MaterializeResult:
    skipped = skipped_if_disabled(context, profile)
    if skipped is not None:
        return skipped
    from evaluation.scorecard import comparison_table
    from training.config import load_config
    from training.research import plot_loss_curves, read_loss_curve, tokens_per_step

    out = research_dir(profile, "ablation_comparison")
    evals = [profile.paths.evaluation / "ablation" / arm.name for arm in ARMS]
    fp = input_fingerprint(
        code=code_fingerprint("evaluation.scorecard", "training.research"), config={}, upstream=evals
    )

    def build() -> dict[str, Any]:
        results = {
            arm.name: json.loads((d / "results.json").read_text()) for arm, d in zip(ARMS, evals, strict=True)
        }
        md = comparison_table(results, base="base")
        atomic_write_text(out / "comparison.md", md + "\n")
        curves = {}
        for arm in ARMS:
            run_dir = profile.paths.models / "ablation" / arm.name
            if (run_dir / "config.json").exists():
                cfg = load_config(run_dir / "config.json")
                curves[arm.name] = read_loss_curve(run_dir / "metrics.jsonl", tokens_per_step(cfg))
        plot_loss_curves(curves, out / "loss_curves.png", "ablation arms: training loss")
        uri, run_id = start_mlflow_run(context, profile, mlflow, "ablation_comparison")
        import mlflow as mlf

        with active_run(uri, run_id):
            mlf.log_artifacts(str(out), artifact_path="ablation_comparison")
            law_dir = research_dir(profile, "mixing_law")
            if (law_dir / "law.png").exists():
                mlf.log_artifacts(str(law_dir), artifact_path="mixing_law")
        return {"mlflow_run_id": run_id, "n_checkpoints": len(results)}

    result = materialize_stage(context, out, fp, build)
    return _with_markdown(result, out / "comparison.md", out / "loss_curves.png", "loss curves")


research_assets = [general_shards, mixing_grid, mixing_law, ablation_comparison]
