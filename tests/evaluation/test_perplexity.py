from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evaluation.perplexity import perplexity


def test_perplexity_matches_a_direct_computation(tokenizer, tiny_model):
    texts = ["The quick brown fox jumps over the lazy dog.", "Function calling with tools.", "x"]
    result = perplexity(tiny_model, tokenizer, texts, seq_len=8, batch_size=3)
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            for start in range(0, max(len(ids) - 1, 0), 7):
                window = torch.tensor([ids[start : start + 8]])
                logits = tiny_model(input_ids=window).logits[0, :-1]
                nll += float(F.cross_entropy(logits, window[0, 1:], reduction="sum"))
                count += window.shape[1] - 1
    assert (
        result["n_tokens"]
        == count
        == sum(
            len(tokenizer(t, add_special_tokens=False)["input_ids"]) - 1
            for t in texts
            if len(tokenizer(t, add_special_tokens=False)["input_ids"]) > 1
        )
    )
    assert result["nll_per_token"] == pytest.approx(nll / count, rel=1e-4)
    assert result["ppl"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert result["n_skipped_texts"] == 1 and result["n_texts"] == 2
    # A random model over a 600-token vocabulary is close to uniform.
    assert 100 < result["ppl"] < 3000


def test_perplexity_rejects_nothing_to_score(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="undefined"):
        perplexity(tiny_model, tokenizer, ["", "a"], seq_len=8)
