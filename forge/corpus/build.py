"""Exports of the warehouse marts as stages: the SFT set, the unseen-API benchmark, the held-out
evaluation texts. The tokenizer and the packed mixtures are stages of their own
(``forge.corpus.tokenizer``, ``forge.corpus.mixtures``)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from contracts.bfcl import write_unseen_benchmark
from contracts.sft import SPLITS as SFT_SPLITS
from contracts.sft import SftRow, write_sft_jsonl
from contracts.sft import split_path as sft_split_path
from forge.core.io import atomic_write_text
from forge.core.stage import Stage, StageConfig
from forge.core.warehouse import CORPUS_CATEGORIES, fetch_all


def export_sft_dataset(warehouse: Path, out_dir: Path) -> dict[str, Any]:
    """fct_sft_examples → ``train.jsonl`` / ``validation.jsonl``, one :class:`contracts.sft.SftRow` per line."""
    counts: dict[str, int] = {}
    by_pattern: dict[str, int] = {}
    for split in SFT_SPLITS:
        rows = fetch_all(
            warehouse,
            f"select example_id, pattern, messages, tools from fct_sft_examples where split = '{split}' order by example_id",
        )
        counts[split] = write_sft_jsonl(
            sft_split_path(out_dir, split),
            (
                SftRow(r["example_id"], json.loads(r["messages"]), json.loads(r["tools"] or "[]"))
                for r in rows
            ),
        )
        for r in rows:
            by_pattern[r["pattern"]] = by_pattern.get(r["pattern"], 0) + 1
    if counts["train"] == 0:
        raise ValueError("fct_sft_examples has no training rows: nothing to fine-tune on")
    return {"n_train": counts["train"], "n_validation": counts["validation"], "by_pattern": by_pattern}


def build_unseen_benchmark(warehouse: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The unseen-API benchmark in BFCL's format, from the held-out providers' operations.

    Writes the items and answers only; its card is :func:`evaluation.unseen.card.write_card`'s,
    which the asset calls next with the providers and operation count returned here.
    """
    from forge.synth.unseen import build_unseen_items

    rows = fetch_all(warehouse, "select * from fct_eval_holdout order by api_id")
    items, answers = build_unseen_items(
        rows, seed=int(cfg.get("seed", 0)), n_items=int(cfg.get("n_items", 200))
    )
    write_unseen_benchmark(out_dir, items, answers)
    by_category: dict[str, int] = {}
    for item in items:
        by_category[item["category"]] = by_category.get(item["category"], 0) + 1
    return {
        "n_items": len(items),
        "by_category": by_category,
        "n_operations": len(rows),
        "providers": sorted({r["provider"] for r in rows}),
    }


def export_heldout_texts(
    warehouse: Path, max_docs_per_category: int, out_dir: Path, seed: int = 0
) -> dict[str, Any]:
    """Validation-split documents per category for perplexity (never in the training shards)."""
    counts = {}
    for category in CORPUS_CATEGORIES:
        rows = fetch_all(
            warehouse,
            f"select doc_id, text from fct_corpus_documents where split = 'validation' and category = '{category}' "
            f"order by hash(doc_id) limit {int(max_docs_per_category)}",
        )
        random.Random(seed).shuffle(rows)
        atomic_write_text(out_dir / f"{category}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        counts[category] = len(rows)
    return {"n_docs_by_category": counts}


class SftDatasetConfig(StageConfig):
    """No settings: the rows and the split are the mart's (``fct_sft_examples``)."""


def _export_sft(cfg: SftDatasetConfig, *, warehouse: Path, out_dir: Path) -> dict[str, Any]:
    return export_sft_dataset(warehouse, out_dir)


class UnseenBenchmarkConfig(StageConfig):
    """How many items and from which seed (the profile's ``evaluation.unseen`` holds the defaults)."""

    n_items: int
    seed: int


def _build_unseen(cfg: UnseenBenchmarkConfig, *, warehouse: Path, out_dir: Path) -> dict[str, Any]:
    return build_unseen_benchmark(warehouse, cfg.model_dump(), out_dir)


class HeldoutTextsConfig(StageConfig):
    """Documents per category (the profile's ``evaluation.perplexity`` holds the default) and the
    seed of their shuffle."""

    max_docs_per_category: int
    seed: int = 0


def _export_heldout(cfg: HeldoutTextsConfig, *, warehouse: Path, out_dir: Path) -> dict[str, Any]:
    return export_heldout_texts(warehouse, cfg.max_docs_per_category, out_dir, seed=cfg.seed)


SFT_DATASET_STAGE = Stage("sft_dataset", SftDatasetConfig, _export_sft)
UNSEEN_BENCHMARK_STAGE = Stage("unseen_api_benchmark", UnseenBenchmarkConfig, _build_unseen)
HELDOUT_TEXTS_STAGE = Stage("heldout_texts", HeldoutTextsConfig, _export_heldout)
