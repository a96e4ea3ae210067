"""Corpus stages that read the warehouse marts: tokenizer, packed mixtures, SFT set, unseen-API
benchmark, held-out evaluation texts. Plain functions called by the corpus assets and the CLI."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from forge.core.io import atomic_write_json, atomic_write_text
from forge.core.stats import StepStats
from forge.core.warehouse import fetch_all, iter_rows

CATEGORIES = ("agent", "code", "text")


def _train_texts(warehouse: Path, max_docs: int | None) -> Iterator[str]:
    """Training-split texts, interleaved across categories in a stable hashed order."""
    per_category = -(-int(max_docs) // len(CATEGORIES)) if max_docs else 10**12
    query = f"""
        select text from fct_corpus_documents
        where split = 'train'
        qualify row_number() over (partition by category order by hash(doc_id)) <= {per_category}
        order by hash(doc_id)
    """
    for row in iter_rows(warehouse, query):
        yield row["text"]


def build_tokenizer(warehouse: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Train a byte-level BPE on the corpus, or adapt the configured base model's tokenizer."""
    from transformers import AutoTokenizer

    from forge.corpus.tokenizer import load_or_adapt_tokenizer, train_tokenizer

    if cfg.get("base"):
        load_or_adapt_tokenizer(cfg["base"], out_dir)
        origin = f"adapted from {cfg['base']}"
    else:
        train_tokenizer(
            _train_texts(warehouse, cfg.get("max_train_docs")), out_dir, int(cfg.get("vocab_size", 8192))
        )
        origin = "trained on fct_corpus_documents (train split)"
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    sample = fetch_all(
        warehouse, "select category, text from fct_corpus_documents where split = 'validation' limit 200"
    )
    chars = sum(len(r["text"]) for r in sample)
    toks = sum(len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in sample)
    return {
        "origin": origin,
        "vocab_size": len(tok),
        "chars_per_token_validation": round(chars / toks, 3) if toks else None,
        "eos_token": tok.eos_token,
        "has_chat_template": bool(tok.chat_template),
    }


def _category_docs(warehouse: Path, seed_only: bool):
    where = "split = 'train'" + (" and is_seed" if seed_only else "")

    def docs(category: str) -> Iterator[dict[str, Any]]:
        yield from iter_rows(
            warehouse,
            f"select doc_id, category, text, n_tokens_est from fct_corpus_documents "
            f"where {where} and category = '{category}' order by doc_id",
        )

    return docs


def build_packed_mixture(
    warehouse: Path, tokenizer_dir: Path, mix_cfg: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Select documents by the configured category ratios and token budget, pack them into shards."""
    from forge.corpus.packing import pack_documents, select_mixture

    ratios = {k: float(v) for k, v in mix_cfg.get("ratios", {"agent": 1, "code": 1, "text": 1}).items()}
    selected, report = select_mixture(
        _category_docs(warehouse, bool(mix_cfg.get("seed_only", False))),
        ratios,
        int(mix_cfg["token_budget"]),
        seed=int(mix_cfg.get("seed", 0)),
        estimate_tokens=lambda d: int(d.get("n_tokens_est") or 1),
        allow_repeat=bool(mix_cfg.get("allow_repeat", False)),
    )
    stats = StepStats("pack")
    manifest = pack_documents(selected, tokenizer_dir, out_dir, stats=stats)
    atomic_write_json(out_dir / "mixture_report.json", report)
    total = max(1, manifest["n_tokens"])
    return {
        "n_tokens": manifest["n_tokens"],
        "n_documents": manifest["n_documents"],
        "tokens_by_category": manifest["tokens_by_category"],
        "share_by_category": {k: round(v / total, 4) for k, v in manifest["tokens_by_category"].items()},
        "target_ratios": ratios,
        "n_shards": len(manifest["shards"]),
        "mixture_report": report,
        "pack_drops": dict(stats.dropped),
    }


def export_sft_dataset(warehouse: Path, out_dir: Path) -> dict[str, Any]:
    """fct_sft_examples → ``train.jsonl`` / ``validation.jsonl`` (messages + tools per line)."""
    counts: dict[str, int] = {}
    by_pattern: dict[str, int] = {}
    for split in ("train", "validation"):
        rows = fetch_all(
            warehouse,
            f"select example_id, pattern, messages, tools from fct_sft_examples where split = '{split}' order by example_id",
        )
        lines = [
            json.dumps(
                {
                    "id": r["example_id"],
                    "messages": json.loads(r["messages"]),
                    "tools": json.loads(r["tools"] or "[]"),
                }
            )
            for r in rows
        ]
        atomic_write_text(out_dir / f"{split}.jsonl", "\n".join(lines) + ("\n" if lines else ""))
        counts[split] = len(lines)
        for r in rows:
            by_pattern[r["pattern"]] = by_pattern.get(r["pattern"], 0) + 1
    if counts["train"] == 0:
        raise ValueError("fct_sft_examples has no training rows: nothing to fine-tune on")
    return {"n_train": counts["train"], "n_validation": counts["validation"], "by_pattern": by_pattern}


def build_unseen_benchmark(warehouse: Path, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The unseen-API benchmark in BFCL's format, from the held-out providers' operations."""
    from forge.synth.unseen import build_unseen_items

    rows = fetch_all(warehouse, "select * from fct_eval_holdout order by api_id")
    items, answers = build_unseen_items(
        rows, seed=int(cfg.get("seed", 0)), n_items=int(cfg.get("n_items", 200))
    )
    atomic_write_text(out_dir / "items.jsonl", "".join(json.dumps(i) + "\n" for i in items))
    atomic_write_text(out_dir / "possible_answers.jsonl", "".join(json.dumps(a) + "\n" for a in answers))
    by_category: dict[str, int] = {}
    for item in items:
        by_category[item["category"]] = by_category.get(item["category"], 0) + 1
    providers = sorted({r["provider"] for r in rows})
    card = (
        "# Unseen-API benchmark\n\n"
        f"Items in BFCL's format built from {len(rows)} operations of held-out providers "
        f"({', '.join(providers) or 'none'}), which no training table contains (see fct_contamination).\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in sorted(by_category.items()))
        + "\n"
    )
    atomic_write_text(out_dir / "README.md", card)
    return {
        "n_items": len(items),
        "by_category": by_category,
        "n_operations": len(rows),
        "providers": providers,
    }


def export_heldout_texts(
    warehouse: Path, max_docs_per_category: int, out_dir: Path, seed: int = 0
) -> dict[str, Any]:
    """Validation-split documents per category for perplexity (never in the training shards)."""
    counts = {}
    for category in CATEGORIES:
        rows = fetch_all(
            warehouse,
            f"select doc_id, text from fct_corpus_documents where split = 'validation' and category = '{category}' "
            f"order by hash(doc_id) limit {int(max_docs_per_category)}",
        )
        random.Random(seed).shuffle(rows)
        atomic_write_text(out_dir / f"{category}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        counts[category] = len(rows)
    return {"n_docs_by_category": counts}
