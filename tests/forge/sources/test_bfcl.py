"""BFCL's official items as the raw table: one row per item of every supported category found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from contracts.bfcl import (
    MULTI_TURN_CATEGORIES,
    SCORED_CATEGORIES,
    SUPPORTED_CATEGORIES,
    load_category,
    load_multi_turn_category,
)
from forge.core.io import read_parquet_rows
from forge.sources.bfcl import ingest_bfcl_items

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bfcl"


def test_ingest_reads_every_fixture_category(tmp_path):
    meta = ingest_bfcl_items(FIXTURES, tmp_path / "out")
    expected = {c: len(load_category(FIXTURES, c)) for c in SUPPORTED_CATEGORIES}
    expected |= {c: len(load_multi_turn_category(FIXTURES, c)) for c in MULTI_TURN_CATEGORIES}
    assert meta["items_by_category"] == expected and meta["missing_categories"] == []
    rows = read_parquet_rows(tmp_path / "out" / "part-0.parquet")
    assert len(rows) == meta["n_rows"] == sum(expected.values())
    relevance = next(r for r in rows if r["category"] == "live_relevance")
    assert relevance["ground_truth"] is None and relevance["question_text"]
    simple = next(r for r in rows if r["category"] == "simple_python")
    assert json.loads(simple["ground_truth"]) and simple["source_uri"].endswith("BFCL_v4_simple_python.json")
    turns = next(r for r in rows if r["item_id"] == "multi_turn_miss_func_47")
    assert "standard deviation" in turns["question_text"]  # every user turn
    assert "mean" in {f["name"] for f in json.loads(turns["functions"])}  # held-out documents included


def test_missing_category_files_are_listed(tmp_path):
    data = tmp_path / "data"
    (data / "possible_answer").mkdir(parents=True)
    shutil.copy(FIXTURES / "BFCL_v4_irrelevance.json", data)
    meta = ingest_bfcl_items(data, tmp_path / "out")
    assert list(meta["items_by_category"]) == ["irrelevance"]
    assert set(meta["missing_categories"]) == set(SCORED_CATEGORIES) - {"irrelevance"}
