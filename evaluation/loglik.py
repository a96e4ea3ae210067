"""Teacher-forced log-likelihood of each item's ground-truth call given its prompt.

Accuracy of a small model on BFCL-format items sits near zero and moves in jumps; the
log-likelihood of the right answer is continuous and moves before accuracy does. For an item the
prompt is the conversation rendered with the tool-aware chat template up to the assistant's turn
(``add_generation_prompt``), exactly what generation sees; the target is the reference answer
(:func:`evaluation.bfcl.answers.reference_calls`: the first allowed value of every argument)
rendered as the template renders an assistant turn with those tool calls, end-of-turn included.

Per item: ``nll`` (nats, summed over target tokens), ``n_tokens``, ``nll_per_token``. The
aggregate is token-weighted per category and overall. Items without a call to score (irrelevance:
the right answer is no call) and items whose rendering does not extend the prompt are counted by
reason in ``skipped``, never scored as zero.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from contracts.bfcl import BfclItem
from contracts.chat import apply_chat_format
from evaluation.bfcl.answers import reference_calls
from evaluation.bfcl.runner import item_prompt


def target_pair(tokenizer: Any, item: BfclItem) -> tuple[list[int], list[int]] | str:
    """(prompt ids, target ids) of ``item``, or the reason it has no target."""
    calls = reference_calls(item.category, item.functions, item.ground_truth)
    if not calls:
        return "no_reference_call"
    prompt = item_prompt(item)
    tool_calls = [{"name": name, "arguments": args} for call in calls for name, args in call.items()]
    answered = [*prompt["messages"], {"role": "assistant", "content": "", "tool_calls": tool_calls}]
    prompt_text = apply_chat_format(
        tokenizer, prompt["messages"], prompt["tools"], add_generation_prompt=True
    )
    full_text = apply_chat_format(tokenizer, answered, prompt["tools"])
    if not full_text.startswith(prompt_text) or len(full_text) == len(prompt_text):
        return "template_does_not_extend_prompt"
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    return (prompt_ids, target_ids) if target_ids else "empty_target"


def item_logliks(
    model: Any, tokenizer: Any, items: Sequence[BfclItem], *, batch_size: int = 8, max_len: int | None = None
) -> tuple[list[dict[str, Any]], Counter]:
    """One row ``{id, category, nll, n_tokens, nll_per_token}`` per scorable item, and the skip
    counts by reason. ``max_len`` (default: the model's max positions) keeps the *end* of a long
    prompt so the whole target is always scored; a target longer than ``max_len`` is skipped."""
    limit = max_len or int(getattr(model.config, "max_position_embeddings", 4096))
    skipped: Counter = Counter()
    pairs: list[tuple[BfclItem, list[int], int]] = []
    for item in items:
        pair = target_pair(tokenizer, item)
        if isinstance(pair, str):
            skipped[pair] += 1
            continue
        prompt_ids, target_ids = pair
        if len(target_ids) >= limit:
            skipped["target_longer_than_context"] += 1
            continue
        ids = (prompt_ids + target_ids)[-limit:]
        pairs.append((item, ids, len(target_ids)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    rows: list[dict[str, Any]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(pairs), batch_size):
                batch = pairs[start : start + batch_size]
                width = max(len(ids) for _, ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                targets = torch.full((len(batch), width), -100, dtype=torch.long)
                for r, (_, ids, n_target) in enumerate(batch):  # right padding
                    input_ids[r, : len(ids)] = torch.tensor(ids)
                    attention[r, : len(ids)] = 1
                    targets[r, len(ids) - n_target : len(ids)] = torch.tensor(ids[len(ids) - n_target :])
                logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
                logits = logits[:, :-1].float()
                shifted = targets[:, 1:].to(device)
                nll = F.cross_entropy(logits.transpose(1, 2), shifted, reduction="none", ignore_index=-100)
                for r, (item, _, n_target) in enumerate(batch):
                    total = float(nll[r].sum())
                    rows.append(
                        {
                            "id": item.id,
                            "category": item.category,
                            "nll": total,
                            "n_tokens": n_target,
                            "nll_per_token": total / n_target,
                        }
                    )
    finally:
        model.train(was_training)
    return rows, skipped


def summarize_logliks(rows: Sequence[dict[str, Any]], skipped: Counter) -> dict[str, Any]:
    """Token-weighted NLL per target token, per category and over all items, with counts."""

    def agg(part: Sequence[dict[str, Any]]) -> dict[str, Any]:
        tokens = sum(r["n_tokens"] for r in part)
        nll = sum(r["nll"] for r in part) / max(tokens, 1)
        return {"nll_per_token": nll, "ppl": math.exp(nll), "n_items": len(part), "n_tokens": tokens}

    cats: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        cats.setdefault(row["category"], []).append(row)
    out: dict[str, Any] = {"categories": {c: agg(v) for c, v in sorted(cats.items())}}
    out["all"] = agg(rows) if rows else None
    out["skipped"] = dict(skipped)
    return out
