"""The teacher-forced log-likelihood of the ground-truth call."""

import math

import pytest

from contracts.bfcl import load_category
from evaluation.loglik import item_logliks, summarize_logliks, target_pair


def test_loglik_scores_the_reference_call(tokenizer, tiny_model, fixtures_dir):
    items = load_category(fixtures_dir, "simple_python") + load_category(fixtures_dir, "irrelevance")
    pair = target_pair(tokenizer, items[0])
    assert isinstance(pair, tuple) and pair[1]
    target_text = tokenizer.decode(pair[1])
    assert "<tool_call>" in target_text and "</tool_call>" in target_text
    rows, skipped = item_logliks(tiny_model, tokenizer, items, batch_size=2)
    assert skipped["no_reference_call"] == len([i for i in items if i.category == "irrelevance"])
    assert rows and all(r["nll"] > 0 and r["n_tokens"] > 0 for r in rows)
    # batching does not change an item's likelihood (padding is masked)
    one, _ = item_logliks(tiny_model, tokenizer, items[:1], batch_size=1)
    assert one[0]["nll"] == pytest.approx(rows[0]["nll"], rel=1e-4)
    summary = summarize_logliks(rows, skipped)
    assert math.isfinite(summary["all"]["nll_per_token"]) and "simple_python" in summary["categories"]
