"""Every benchmark on one checkpoint, the model loaded once: what the ablation compares.

For each checkpoint (base, CPT stages, control, SFT arms) the same items are scored: BFCL
categories of the official data (its multi-turn categories as conversations against the wheel's
environment classes, as :func:`evaluation.pipeline.run_bfcl` runs them), the unseen-API benchmark,
held-out perplexity per category, HumanEval, and the teacher-forced log-likelihood of every
single-turn item's ground-truth call (BFCL and unseen APIs). Accuracies come with bootstrap 95% intervals over items (:mod:`evaluation.bootstrap`).
The result is one JSON document per checkpoint (``results.json``) plus per-item rows, so the
comparison across checkpoints is a join on the metric names of :func:`flat_scores`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.bfcl import category, load_category, read_unseen_benchmark
from contracts.io import atomic_write_text, read_jsonl
from evaluation.bfcl.multi_turn import stop_reasons
from evaluation.bfcl.runner import as_item, evaluate_items, load_model, multi_turn_rows, summarize
from evaluation.bootstrap import accuracy_by_category, bootstrap_ci
from evaluation.config import EvaluationConfig
from evaluation.loglik import item_logliks, summarize_logliks
from evaluation.perplexity import perplexity
from evaluation.pipeline import multi_turn_options


@dataclass(frozen=True)
class EvalInputs:
    """Where the benchmark data lives: BFCL's official data dir, the unseen-API benchmark dir, the
    held-out texts dir (``<category>.jsonl``), and HumanEval's ``problems.jsonl`` (None: skipped,
    and said so in the result)."""

    bfcl_dir: Path
    unseen_dir: Path
    heldout_dir: Path
    humaneval_path: Path | None = None


def _bfcl_items(inputs: EvalInputs, cfg: EvaluationConfig) -> list[Any]:
    """The single-turn items of the configured categories (the multi-turn ones are conversations:
    :func:`_multi_turn_rows`)."""
    limit = cfg.bfcl.limit_per_category
    single = [c for c in cfg.bfcl.categories if not category(c).multi_turn]
    return [item for cat in single for item in load_category(inputs.bfcl_dir, cat, limit)]


def _multi_turn_rows(model: Any, tokenizer: Any, inputs: EvalInputs, cfg: EvaluationConfig) -> list[dict]:
    """Scored rows of the configured multi-turn categories, run as :func:`~evaluation.pipeline.run_bfcl`
    runs them (the same environments, limits and conversations per category)."""
    options = multi_turn_options(cfg.bfcl.model_dump())
    limit = options.pop("multi_turn_limit_per_category")
    return multi_turn_rows(
        model,
        tokenizer,
        inputs.bfcl_dir,
        cfg.bfcl.categories,
        cfg.bfcl.limit_per_category if limit is None else limit,
        cfg.bfcl.batch_size,
        cfg.bfcl.max_new_tokens,
        **options,
    )


def _unseen_items(inputs: EvalInputs, cfg: EvaluationConfig) -> list[Any]:
    raw_items, answers = read_unseen_benchmark(inputs.unseen_dir)
    limit, seen, items = cfg.unseen.limit_per_category, {}, []
    for raw in raw_items:
        cat = raw["category"]
        if limit is not None and seen.get(cat, 0) >= int(limit):
            continue
        seen[cat] = seen.get(cat, 0) + 1
        items.append(as_item({**raw, "ground_truth": answers.get(raw["id"])}))
    return items


def _accuracy(
    model: Any,
    tokenizer: Any,
    items: list[Any],
    batch: int,
    max_new: int,
    seed: int,
    more_rows: list[dict] = (),
) -> dict:
    """Scores of ``items`` (generated here) and of ``more_rows`` (scored already: conversations)."""
    single = evaluate_items(model, tokenizer, items, batch, max_new) if items else {}
    rows = single.get("rows", []) + list(more_rows)
    if not rows:
        return {"n_items": 0, "note": "no items"}
    result = summarize(rows)
    if single.get("prompts_too_long"):
        result["prompts_too_long"] = single["prompts_too_long"]
    rows = result.pop("rows")
    result["ci"] = accuracy_by_category(rows, seed=seed)
    return {**result, "rows": rows}


def evaluate_checkpoint(
    model_dir: Path, inputs: EvalInputs, cfg: EvaluationConfig, out_dir: Path, *, seed: int = 0
) -> dict[str, Any]:
    """Score the checkpoint in ``model_dir`` (an HF export) on every benchmark; write
    ``results.json`` (no per-item rows) and ``items_<benchmark>.jsonl``; return the slim result."""
    model, tokenizer = load_model(model_dir)
    result: dict[str, Any] = {"model_dir": str(model_dir), "config": cfg.model_dump()}
    bfcl_items, unseen_items = _bfcl_items(inputs, cfg), _unseen_items(inputs, cfg)
    conversations = _multi_turn_rows(model, tokenizer, inputs, cfg)
    result["bfcl"] = _accuracy(
        model, tokenizer, bfcl_items, cfg.bfcl.batch_size, cfg.bfcl.max_new_tokens, seed, conversations
    )
    if any(category(c).multi_turn for c in cfg.bfcl.categories):
        result["bfcl"]["multi_turn_stopped"] = stop_reasons(conversations)
    result["unseen_api"] = _accuracy(
        model, tokenizer, unseen_items, cfg.unseen.batch_size, cfg.unseen.max_new_tokens, seed
    )
    for name, items in (("bfcl", bfcl_items), ("unseen_api", unseen_items)):
        rows, skipped = item_logliks(model, tokenizer, items, batch_size=cfg.bfcl.batch_size)
        result[f"loglik_{name}"] = {**summarize_logliks(rows, skipped), "rows": rows}
    result["perplexity"] = {}
    for path in sorted(inputs.heldout_dir.glob("*.jsonl")):
        texts = [r["text"] for r in read_jsonl(path)]
        if texts:
            result["perplexity"][path.stem] = perplexity(
                model, tokenizer, texts, seq_len=cfg.perplexity.seq_len, batch_size=8
            )
    if inputs.humaneval_path is not None:
        from evaluation.humaneval import evaluate_humaneval, load_problems

        he = cfg.humaneval
        problems = load_problems(inputs.humaneval_path, he.limit)
        res = evaluate_humaneval(
            model, tokenizer, problems, he.max_new_tokens, he.batch_size, he.timeout_s, he.memory_mb
        )
        res["ci"] = bootstrap_ci([float(r["passed"]) for r in res["rows"]], seed=seed)
        result["humaneval"] = res
    else:
        result["humaneval"] = {"note": "no HumanEval problems given: skipped"}
    return save(out_dir, result)


def save(out_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Per-item rows to ``items_<benchmark>.jsonl``, the rest to ``results.json`` (atomically)."""
    slim: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict) and "rows" in value:
            rows = value["rows"]
            text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
            atomic_write_text(out_dir / f"items_{key}.jsonl", text)
            value = {k: v for k, v in value.items() if k != "rows"}
        slim[key] = value
    atomic_write_text(out_dir / "results.json", json.dumps(slim, indent=2, default=str) + "\n")
    return slim


def flat_scores(result: dict[str, Any]) -> dict[str, float]:
    """The comparison's metric names -> value, from a slim result: ``bfcl.acc.<cat>`` with
    ``.lo``/``.hi``, BFCL's summary groups as ``bfcl.group.<group>`` (``multi_turn``, ``non_live_ast``, ...),
    ``unseen_api.acc.<cat>``, ``loglik_bfcl.nll`` (per target token),
    ``ppl.<category>`` / ``nll.<category>``, ``humaneval.pass@1``."""
    out: dict[str, float] = {}
    for bench in ("bfcl", "unseen_api"):
        for cat, ci in ((result.get(bench) or {}).get("ci") or {}).items():
            out[f"{bench}.acc.{cat}"] = ci["mean"]
            out[f"{bench}.acc.{cat}.lo"] = ci["lo"]
            out[f"{bench}.acc.{cat}.hi"] = ci["hi"]
        for group, stats in ((result.get(bench) or {}).get("summary") or {}).items():
            out[f"{bench}.group.{group}"] = stats["accuracy"]
        ll = result.get(f"loglik_{bench}") or {}
        if ll.get("all"):
            out[f"loglik_{bench}.nll"] = ll["all"]["nll_per_token"]
        for cat, agg in (ll.get("categories") or {}).items():
            out[f"loglik_{bench}.nll.{cat}"] = agg["nll_per_token"]
    for cat, ppl in (result.get("perplexity") or {}).items():
        out[f"ppl.{cat}"] = ppl["ppl"]
        out[f"nll.{cat}"] = ppl["nll_per_token"]
    he = result.get("humaneval") or {}
    if "pass@1" in he:
        out["humaneval.pass@1"] = he["pass@1"]
        out["humaneval.pass@1.lo"] = he["ci"]["lo"]
        out["humaneval.pass@1.hi"] = he["ci"]["hi"]
    return out
