"""BFCL's official test items as a raw table, for decontamination and evaluation.

Reads the unpacked ``bfcl-eval`` data with :func:`contracts.bfcl.load_category` (single-turn) and
:func:`contracts.bfcl.load_multi_turn_category` (multi-turn: every user turn is question text, the
involved classes' function documents are its functions, the per-turn call strings its ground
truth); grain of the output: one row per official item (``raw.bfcl_items``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contracts import tables
from contracts.bfcl import (
    MULTI_TURN_CATEGORIES,
    SUPPORTED_CATEGORIES,
    load_category,
    load_multi_turn_category,
    question_file,
)
from forge.core.io import write_parquet
from forge.core.stage import Stage, StageConfig


def ingest_bfcl_items(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Every official BFCL test item (AST, relevance, multi-turn) under ``data_dir`` → ``out_dir/part-0.parquet``.

    A category whose file is absent is listed in ``missing_categories``, not an error (partial data
    still decontaminates what it covers).
    """
    counts: dict[str, int] = {}
    missing: list[str] = []

    def rows() -> Iterator[dict[str, Any]]:
        for category in SUPPORTED_CATEGORIES:
            try:
                items = load_category(data_dir, category)
            except FileNotFoundError:
                missing.append(category)
                continue
            counts[category] = len(items)
            for item in items:
                text = " ".join(
                    m.get("content", "")
                    for turn in item.question
                    for m in turn
                    if isinstance(m, dict) and m.get("role") == "user"
                )
                yield {
                    "item_id": item.id,
                    "category": category,
                    "question": json.dumps(item.question),
                    "functions": json.dumps(item.functions),
                    "ground_truth": json.dumps(item.ground_truth) if item.ground_truth is not None else None,
                    "question_text": text,
                    "source_uri": str(question_file(data_dir, category)),
                }

    def multi_turn_rows() -> Iterator[dict[str, Any]]:
        for category in MULTI_TURN_CATEGORIES:
            try:
                items = load_multi_turn_category(data_dir, category)
            except FileNotFoundError:
                missing.append(category)
                continue
            counts[category] = len(items)
            for item in items:
                functions = item.functions + [doc for docs in item.held_out.values() for doc in docs]
                yield {
                    "item_id": item.id,
                    "category": category,
                    "question": json.dumps(item.turns),
                    "functions": json.dumps(functions),
                    "ground_truth": json.dumps(item.ground_truth),
                    "question_text": " ".join(
                        m.get("content", "")
                        for turn in item.turns
                        for m in turn
                        if isinstance(m, dict) and m.get("role") == "user"
                    ),
                    "source_uri": str(question_file(data_dir, category)),
                }

    def every_row() -> Iterator[dict[str, Any]]:
        yield from rows()
        yield from multi_turn_rows()

    n = write_parquet(out_dir / "part-0.parquet", every_row(), tables.BFCL_ITEMS)
    return {"n_rows": n, "items_by_category": counts, "missing_categories": missing}


class BfclSourceConfig(StageConfig):
    """The profile's ``sources.bfcl``: where BFCL's official data comes from — a local copy in the
    official layout, a downloaded wheel, or the wheel to download (never installed)."""

    #: pip requirement of the bfcl-eval wheel, downloaded with ``pip download --no-deps``
    wheel: str = "bfcl-eval==2026.3.23"
    #: an already downloaded wheel (relative to the repository root)
    local_wheel: str | None = None
    #: a data directory in the official layout, used as is (tests)
    local_data_dir: str | None = None


def _ingest_bfcl(cfg: BfclSourceConfig, *, data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The stage's run: ``cfg`` chose ``data_dir`` (the caller resolved it)."""
    return ingest_bfcl_items(data_dir, out_dir)


BFCL_STAGE = Stage("bfcl_items", BfclSourceConfig, _ingest_bfcl)
