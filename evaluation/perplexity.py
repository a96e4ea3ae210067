"""Held-out perplexity: the general-retention number (did agent training erase general language?).

Each text is tokenized on its own (no BOS/EOS added, no context shared across texts) and cut into
windows of ``seq_len`` tokens; within a window every token after the first is predicted from the
tokens before it. NLL is summed over all predicted tokens of all texts and divided by their count
(token-weighted, natural log); ``ppl = exp(nll_per_token)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def _windows(token_ids: list[int], seq_len: int) -> list[list[int]]:
    # Windows overlap by one token so the first token of each later window is still predicted.
    step = seq_len - 1
    return [token_ids[start : start + seq_len] for start in range(0, max(len(token_ids) - 1, 0), step)]


def perplexity(
    model: Any, tokenizer: Any, texts: Sequence[str], seq_len: int = 512, batch_size: int = 8
) -> dict[str, float | int]:
    """Token-weighted perplexity of ``model`` on ``texts``.

    Returns ``ppl``, ``nll_per_token`` (nats), ``n_tokens`` (predicted tokens), ``n_texts`` and
    ``n_skipped_texts`` (texts shorter than two tokens: nothing to predict, counted not hidden).
    """
    if seq_len < 2 or batch_size < 1:
        raise ValueError("seq_len must be >= 2 and batch_size >= 1")
    windows: list[list[int]] = []
    skipped = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < 2:
            skipped += 1
            continue
        windows.extend(_windows(ids, seq_len))
    if not windows:
        raise ValueError("no text has two or more tokens: perplexity is undefined")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(windows), batch_size):
                batch = windows[start : start + batch_size]
                width = max(len(window) for window in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, window in enumerate(batch):  # right padding: positions stay 0..n-1
                    input_ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
                    attention[row, : len(window)] = 1
                input_ids, attention = input_ids.to(device), attention.to(device)
                logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
                targets = input_ids[:, 1:].masked_fill(attention[:, 1:] == 0, -100)
                nll = F.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
                )
                total_nll += float(nll)
                total_tokens += int((targets != -100).sum())
    finally:
        model.train(was_training)
    nll_per_token = total_nll / total_tokens
    return {
        "ppl": math.exp(nll_per_token),
        "nll_per_token": nll_per_token,
        "n_tokens": total_tokens,
        "n_texts": len(texts) - skipped,
        "n_skipped_texts": skipped,
    }
