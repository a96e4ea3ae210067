"""Evaluation assets: BFCL (official data), the unseen-API benchmark, general retention, and the
scorecard that registers the SFT model in the MLflow registry with its scores."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

import evaluation.pipeline
from assets.common import materialize_stage, png_markdown, start_mlflow_run
from assets.factory import input_fingerprint, stage_asset
from assets.ingest import bfcl_data_dir, raw_key
from assets.profile import resolve_repo_path
from assets.resources import ForgeResource, MlflowResource
from assets.tracking import active_run, dataset_input
from assets.warehouse import mart_key
from evaluation.humaneval import download_humaneval
from evaluation.plots import plot_scorecards
from evaluation.promotion import BFCL_ITEMS, CHALLENGER, CHAMPION, alias_scorecard, promote_challenger
from evaluation.registry import register_model
from evaluation.scorecard import build_scorecard, format_scorecard
from evaluation.unseen.card import write_card
from forge.core.io import atomic_write_json, atomic_write_text, file_digest
from forge.core.markers import read_marker, upstream_fingerprint
from forge.core.stage import code_fingerprint
from forge.corpus.build import UNSEEN_BENCHMARK_STAGE, UnseenBenchmarkConfig

SFT = AssetKey("sft_model")


def _sft_dir(profile: ForgeResource) -> Path:
    return profile.paths.models / "sft_model"


@asset(
    key=AssetKey("unseen_api_benchmark"),
    group_name="evaluation",
    deps=[mart_key("fct_eval_holdout")],
    kinds={"python", "jsonl"},
    description="The unseen-API benchmark in BFCL's format, built from the held-out providers only.",
)
def unseen_api_benchmark(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    unseen = profile.settings.evaluation.unseen
    cfg = UnseenBenchmarkConfig(n_items=unseen.n_items, seed=unseen.seed)
    out = profile.paths.evaluation / "unseen_api_benchmark"

    def card(meta: dict[str, Any]) -> dict[str, Any]:
        written = write_card(out, providers=meta["providers"], n_operations=meta["n_operations"])
        return {**meta, "version": written.get("version")}

    return stage_asset(
        context,
        UNSEEN_BENCHMARK_STAGE,
        cfg,
        out,
        warehouse=profile.paths.warehouse,
        tables=["fct_eval_holdout"],
        extras=[code_fingerprint("evaluation.unseen.card")],
        then=card,
    )


Inputs = Callable[[ForgeResource], tuple[dict[str, Any], dict[str, Any]]]


def _eval_asset(name: str, deps: list[AssetKey], description: str, run, inputs: Inputs):
    """An evaluation asset: one MLflow run, metrics logged, results as artifacts; skipped when fresh."""

    @asset(
        key=AssetKey(name),
        group_name="evaluation",
        deps=[SFT, *deps],
        kinds={"pytorch", "mlflow"},
        description=description,
    )
    def _asset(
        context: AssetExecutionContext, profile: ForgeResource, mlflow: MlflowResource
    ) -> MaterializeResult:
        out = profile.paths.evaluation / name
        src, cfg = inputs(profile)
        fp = input_fingerprint(
            code=code_fingerprint("evaluation.pipeline"),
            config=cfg,
            upstream=[_sft_dir(profile)],
            extras=[src["digest"]],
        )

        def build() -> dict[str, Any]:
            sft_meta = (read_marker(_sft_dir(profile)) or {}).get("metadata", {})
            # nested under the model's training run: the MLflow UI shows each model with its evaluations
            uri, run_id = start_mlflow_run(
                context,
                profile,
                mlflow,
                name,
                parent_run_id=sft_meta.get("mlflow_run_id"),
                model_fingerprint=upstream_fingerprint(_sft_dir(profile)),
            )
            import mlflow as mlf

            with active_run(uri, run_id):
                mlf.log_params({f"eval.{k}": json.dumps(v) for k, v in cfg.items()})
                mlf.log_input(
                    dataset_input(name, str(src["path"]), src["digest"], {"path": str(src["path"])}),
                    context="evaluation",
                )
                result = run(_sft_dir(profile) / "hf", src["path"], cfg, out)
                metrics = _flat_metrics(result)
                mlf.log_metrics(metrics)
                mlf.log_artifacts(str(out), artifact_path=name)
            return {"mlflow_run_id": run_id, **metrics}

        return materialize_stage(context, out, fp, build)

    return _asset


def _flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Accuracy per category and summary group, or perplexity per category, as MLflow metric names."""
    out: dict[str, float] = {}
    for cat, stats in (result.get("categories") or {}).items():
        out[f"acc.{cat}"] = float(stats["accuracy"])
    for group, stats in (result.get("summary") or {}).items():
        out[f"acc.{group}"] = float(stats["accuracy"])
    if "pass@1" in result:
        out["pass_at_1"] = float(result["pass@1"])
    for key, value in result.items():
        if isinstance(value, dict) and "ppl" in value:
            out[f"ppl.{key}"] = float(value["ppl"])
            out[f"nll.{key}"] = float(value["nll_per_token"])
    return out


def _bfcl_inputs(profile: ForgeResource):
    data_dir = bfcl_data_dir(profile)
    cfg = profile.settings.evaluation.bfcl.model_dump()
    return {"path": data_dir, "digest": file_digest(data_dir)[:32]}, cfg


def _unseen_inputs(profile: ForgeResource):
    bench = profile.paths.evaluation / "unseen_api_benchmark"
    cfg = profile.settings.evaluation.unseen.model_dump()
    return {"path": bench, "digest": upstream_fingerprint(bench)}, cfg


def _retention_inputs(profile: ForgeResource):
    texts = profile.paths.corpus / "heldout_texts"
    cfg = profile.settings.evaluation.perplexity.model_dump()
    return {"path": texts, "digest": upstream_fingerprint(texts)}, cfg


bfcl_eval = _eval_asset(
    "bfcl_eval",
    [raw_key("bfcl_items")],
    "BFCL categories from the official data: single-turn (generate, parse, AST-check) and multi-turn "
    "(conversations whose calls run against the wheel's environment classes; state and response checks).",
    evaluation.pipeline.run_bfcl,
    _bfcl_inputs,
)
unseen_api_eval = _eval_asset(
    "unseen_api_eval",
    [AssetKey("unseen_api_benchmark")],
    "The unseen-API benchmark, scored by the same checker as BFCL.",
    evaluation.pipeline.run_unseen,
    _unseen_inputs,
)
general_retention = _eval_asset(
    "general_retention",
    [AssetKey("heldout_texts")],
    "Perplexity on held-out text, code and agent documents.",
    evaluation.pipeline.run_perplexity,
    _retention_inputs,
)


def _humaneval_inputs(profile: ForgeResource):
    humaneval = profile.settings.evaluation.humaneval
    local = humaneval.local_path
    path = resolve_repo_path(local) if local else download_humaneval(profile.paths.cache)
    return {"path": path, "digest": file_digest(path)[:32]}, humaneval.model_dump(exclude={"local_path"})


humaneval_eval = _eval_asset(
    "humaneval_eval",
    [],
    "HumanEval pass@1 (greedy), completions executed in a sandboxed subprocess (time, memory, no network).",
    evaluation.pipeline.run_humaneval,
    _humaneval_inputs,
)

EVAL_ASSETS = ("bfcl_eval", "unseen_api_eval", "general_retention", "humaneval_eval")


@asset(
    key=AssetKey("scorecard"),
    group_name="evaluation",
    deps=[AssetKey(n) for n in EVAL_ASSETS],
    kinds={"mlflow"},
    description="The model version's scorecard; registers the SFT model in the MLflow registry with its scores.",
)
def scorecard(
    context: AssetExecutionContext, profile: ForgeResource, mlflow: MlflowResource
) -> MaterializeResult:
    out = profile.paths.evaluation / "scorecard"
    model_name = profile.settings.registry.model_name
    fp = input_fingerprint(
        code=code_fingerprint(
            "evaluation.scorecard", "evaluation.registry", "evaluation.pyfunc_model", "evaluation.plots"
        ),
        config={"model_name": model_name},
        upstream=[profile.paths.evaluation / n for n in EVAL_ASSETS],
    )

    def build() -> dict[str, Any]:
        ev = profile.paths.evaluation
        results: dict[str, Any] = {"model": model_name}
        results["bfcl"] = json.loads((ev / "bfcl_eval" / "results.json").read_text())
        results["unseen_api"] = json.loads((ev / "unseen_api_eval" / "results.json").read_text())
        for cat, res in json.loads((ev / "general_retention" / "results.json").read_text()).items():
            results[f"ppl_{cat}"] = res
        humaneval = json.loads((ev / "humaneval_eval" / "results.json").read_text())
        results["humaneval"] = {"pass@1": humaneval["pass@1"], "n_problems": humaneval.get("n_problems", 0)}
        card = build_scorecard(results)
        text, md = format_scorecard(card, "text"), format_scorecard(card, "markdown")
        atomic_write_json(out / "scorecard.json", card)
        atomic_write_text(out / "scorecard.txt", text + "\n")
        atomic_write_text(out / "scorecard.md", md + "\n")
        # the per-item verdicts the promotion check bootstraps over (kept with the version's run)
        keep_bfcl_items(ev / "bfcl_eval" / "items.jsonl", out / BFCL_ITEMS)

        sft_meta = (read_marker(profile.paths.models / "sft_model") or {}).get("metadata", {})
        uri, run_id = start_mlflow_run(
            context, profile, mlflow, "scorecard", sft_run_id=sft_meta.get("mlflow_run_id")
        )
        # the store exists now (start_mlflow_run creates it): compare with the champion, if any
        plot = draw_against_champion(card, uri, model_name, out / "scorecard.png")
        import mlflow as mlf

        scores = {k.replace("/", "."): float(v) for k, v in card["headline"].items() if v is not None}
        with active_run(uri, run_id):
            mlf.log_metrics(scores)
            mlf.log_artifacts(str(out), artifact_path="scorecard")
        registered = register_model(
            tracking_uri=uri,
            run_id=run_id,
            hf_dir=profile.paths.models / "sft_model" / "hf",
            model_name=model_name,
            scores=scores,
            description=f"Hephaestus SFT model ({profile.paths.profile} profile).\n\n{md}",
            alias=CHALLENGER,  # the promotion check decides whether it becomes champion
        )
        headline = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        context.log.info(
            f"scorecard: {headline}; registered {registered['model_uri']}; the table is this "
            f"materialization's `scorecard` metadata and {out / 'scorecard.txt'}"
        )
        return {
            "scorecard_md": md,
            "scorecard_plot_md": png_markdown(plot, "scorecard against the champion"),
            "scorecard_text": text,
            **registered,
            "headline": card["headline"],
        }

    result = materialize_stage(context, out, fp, build)
    md = (out / "scorecard.md").read_text() if (out / "scorecard.md").exists() else ""
    return MaterializeResult(
        metadata={**(result.metadata or {}), "scorecard": MetadataValue.md(md)},
        data_version=result.data_version,
    )


def keep_bfcl_items(items_jsonl: Path, dest: Path) -> int:
    """Copy the per-item BFCL verdicts (``id``, ``category``, ``valid``) next to the scorecard."""
    rows = [json.loads(line) for line in items_jsonl.read_text().splitlines() if line.strip()]
    body = "".join(json.dumps({k: r[k] for k in ("id", "category", "valid")}) + "\n" for r in rows)
    atomic_write_text(dest, body)
    return len(rows)


def draw_against_champion(card: dict[str, Any], tracking_uri: str, model_name: str, path: Path) -> Path:
    """The new scorecard beside the current champion's (when there is one) as a PNG."""
    cards = {"this version": card}
    champion = alias_scorecard(tracking_uri, model_name, CHAMPION)
    if champion is not None:
        cards[f"champion (v{champion[0]})"] = champion[1]
    return plot_scorecards(cards, path, f"{model_name}: this version vs the champion")


@asset_check(
    asset=scorecard,
    name="promotion",
    blocking=False,
    description="Champion/challenger: promotes the registered version with alias `challenger` to "
    "`champion` only if it beats the champion on BFCL overall beyond the paired-bootstrap interval "
    "and loses no more than `registry.promotion.max_retention_loss` of held-out perplexity on the "
    "general categories. A refusal is a warning (the version stays `challenger`); the decision and "
    "its numbers are this check's metadata.",
)
def promotion(profile: ForgeResource, mlflow: MlflowResource) -> AssetCheckResult:
    uri, _ = mlflow.resolve(profile)
    registry = profile.settings.registry
    decision = promote_challenger(uri, registry.model_name, registry.promotion)
    return AssetCheckResult(
        passed=decision.action != "refused",
        severity=AssetCheckSeverity.WARN,
        metadata={
            "decision": decision.action,
            "promoted": decision.promote,
            "reasons_md": MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons) or "-"),
            **{k: v for k, v in decision.numbers.items() if isinstance(v, int | float | str)},
        },
    )


def _checkpoint_eval_asset(arm: str):
    """Every benchmark on one ablation checkpoint, then its registered model version.

    One asset per checkpoint (a factory over the arms) rather than one asset partitioned by arm:
    the arms are different assets with different parents, so a static partition per arm would
    hang every evaluation off every arm and lose the lineage (and the staleness) of each; here a
    retrained arm re-evaluates only itself, and the graph shows which checkpoint each score is of.
    """
    from assets.research import eval_key
    from assets.training import ablation_key

    @asset(
        key=eval_key(arm),
        group_name="evaluation",
        deps=[
            ablation_key(arm),
            raw_key("bfcl_items"),
            AssetKey("unseen_api_benchmark"),
            AssetKey("heldout_texts"),
        ],
        kinds={"pytorch", "mlflow"},
        description=f"Ablation checkpoint {arm!r}: BFCL, unseen APIs, held-out perplexity, HumanEval, "
        "log-likelihood of the ground-truth calls; registered in MLflow with alias {arm!r}.",
    )
    def _asset(
        context: AssetExecutionContext, profile: ForgeResource, mlflow: MlflowResource
    ) -> MaterializeResult:
        from assets.research import skipped_if_disabled
        from evaluation.checkpoint import EvalInputs, evaluate_checkpoint, flat_scores

        skipped = skipped_if_disabled(context, profile)
        if skipped is not None:
            return skipped
        model = profile.paths.models / "ablation" / arm
        out = profile.paths.evaluation / "ablation" / arm
        he_src, _ = _humaneval_inputs(profile)
        inputs = EvalInputs(
            bfcl_dir=bfcl_data_dir(profile),
            unseen_dir=profile.paths.evaluation / "unseen_api_benchmark",
            heldout_dir=profile.paths.corpus / "heldout_texts",
            humaneval_path=he_src["path"],
        )
        cfg = profile.settings.evaluation
        registry = profile.settings.research.registry_model
        fp = input_fingerprint(
            code=code_fingerprint("evaluation.checkpoint", "evaluation.registry", "evaluation.pyfunc_model"),
            config={"evaluation": cfg.model_dump(), "registry": registry},
            upstream=[model, inputs.unseen_dir, inputs.heldout_dir],
            extras=[file_digest(inputs.bfcl_dir)[:32], he_src["digest"]],
        )

        def build() -> dict[str, Any]:
            parent = (read_marker(model) or {}).get("metadata", {}).get("mlflow_run_id")
            uri, run_id = start_mlflow_run(
                context, profile, mlflow, f"ablation_eval_{arm}", parent_run_id=parent, arm=arm
            )
            import mlflow as mlf

            with active_run(uri, run_id):
                result = evaluate_checkpoint(model / "hf", inputs, cfg, out)
                scores = {k.replace("@", "_at_"): v for k, v in flat_scores(result).items()}
                mlf.log_metrics(scores)
                mlf.log_artifacts(str(out), artifact_path=f"ablation_eval_{arm}")
            registered = register_model(
                tracking_uri=uri,
                run_id=run_id,
                hf_dir=model / "hf",
                model_name=registry,
                scores=scores,
                description=f"Ablation checkpoint {arm!r} ({profile.paths.profile} profile).",
                alias=arm,
            )
            return {"mlflow_run_id": run_id, **registered, **scores}

        return materialize_stage(context, out, fp, build)

    return _asset


def _ablation_eval_assets() -> list:
    from training.research import ARMS

    return [_checkpoint_eval_asset(arm.name) for arm in ARMS]


evaluation_checks = [promotion]

evaluation_assets = [
    *_ablation_eval_assets(),
    unseen_api_benchmark,
    bfcl_eval,
    unseen_api_eval,
    general_retention,
    humaneval_eval,
    scorecard,
]
