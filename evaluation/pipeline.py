"""The evaluation stages as plain functions (called by the evaluation assets and the CLI).

Each loads the model once, runs its benchmark, writes ``results.json`` (+ per-item rows as
JSONL) into ``out_dir`` atomically and returns the result dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.bfcl import MAX_STEPS_PER_TURN, read_unseen_benchmark
from contracts.io import atomic_write_text, read_jsonl
from evaluation.bfcl.multi_turn import Limits
from evaluation.bfcl.runner import as_item, evaluate_bfcl, evaluate_items, load_model
from evaluation.perplexity import perplexity


def save_result(out_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``results.json`` without the per-item rows, and ``items.jsonl`` with them."""
    rows = result.get("rows", [])
    atomic_write_text(out_dir / "items.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    slim = {k: v for k, v in result.items() if k != "rows"}
    atomic_write_text(out_dir / "results.json", json.dumps(slim, indent=2, default=str) + "\n")
    return slim


def _repo_path(value: str) -> Path:
    """A configured path: absolute as given, relative to the repository root otherwise."""
    path = Path(value)
    return path if path.is_absolute() else Path(__file__).resolve().parents[1] / path


def run_bfcl(model_dir: Path, data_dir: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """BFCL's categories from ``cfg`` (single-turn and multi-turn) on the official data."""
    result = evaluate_bfcl(
        model_dir,
        data_dir,
        categories=cfg.get("categories")
        or ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"],
        limit_per_category=cfg.get("limit_per_category"),
        batch_size=int(cfg.get("batch_size", 8)),
        max_new_tokens=int(cfg.get("max_new_tokens", 128)),
        **multi_turn_options(cfg),
    )
    return save_result(out_dir, result)


def multi_turn_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """The multi-turn keywords of :func:`evaluation.bfcl.runner.evaluate_bfcl` (and
    :func:`~evaluation.bfcl.runner.multi_turn_rows`, less the limit) from a dumped ``evaluation.bfcl``."""
    environments = cfg.get("environments_dir")
    return {
        "environments_dir": _repo_path(environments) if environments else None,
        "limits": Limits(
            max_steps_per_turn=int(cfg.get("max_steps_per_turn", MAX_STEPS_PER_TURN)),
            step_timeout_s=float(cfg.get("step_timeout_s", 30.0)),
        ),
        "multi_turn_limit_per_category": cfg.get("multi_turn_limit_per_category"),
    }


def run_unseen(model_dir: Path, bench_dir: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The unseen-API benchmark (BFCL format, from held-out providers), scored by the same checker."""
    raw_items, answers = read_unseen_benchmark(bench_dir)
    limit = cfg.get("limit_per_category")
    items, seen = [], {}
    for raw in raw_items:
        cat = raw["category"]
        if limit is not None and seen.get(cat, 0) >= int(limit):
            continue
        seen[cat] = seen.get(cat, 0) + 1
        items.append(as_item({**raw, "ground_truth": answers.get(raw["id"])}))
    if not items:
        result = {
            "n_items": 0,
            "n_valid": 0,
            "categories": {},
            "summary": {},
            "rows": [],
            "note": "no held-out operations: the unseen-API benchmark is empty",
        }
        return save_result(out_dir, result)
    model, tokenizer = load_model(model_dir)
    result = evaluate_items(
        model, tokenizer, items, int(cfg.get("batch_size", 8)), int(cfg.get("max_new_tokens", 128))
    )
    result["config"] = {"limit_per_category": limit}
    return save_result(out_dir, result)


def run_perplexity(model_dir: Path, texts_dir: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Token-weighted perplexity per category on validation-split documents never trained on."""
    model, tokenizer = load_model(model_dir)
    seq_len = int(cfg.get("seq_len", 256))
    result: dict[str, Any] = {}
    for path in sorted(texts_dir.glob("*.jsonl")):
        texts = [r["text"] for r in read_jsonl(path)]
        if texts:
            result[path.stem] = perplexity(model, tokenizer, texts, seq_len=seq_len, batch_size=8)
    return save_result(out_dir, result)


def run_humaneval(model_dir: Path, problems_path: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """HumanEval pass@1 (greedy) with sandboxed execution; ``problems_path`` from ``download_humaneval``."""
    from evaluation.humaneval import evaluate_humaneval, load_problems

    limit = cfg.get("limit")
    problems = load_problems(problems_path, int(limit) if limit is not None else None)
    model, tokenizer = load_model(model_dir)
    result = evaluate_humaneval(
        model,
        tokenizer,
        problems,
        max_new_tokens=int(cfg.get("max_new_tokens", 384)),
        batch_size=int(cfg.get("batch_size", 16)),
        timeout_s=float(cfg.get("timeout_s", 10.0)),
        memory_mb=int(cfg.get("memory_mb", 1024)),
    )
    result["config"] = {"problems_path": str(problems_path), **cfg}
    return save_result(out_dir, result)
