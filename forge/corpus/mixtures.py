"""The continual pre-training mixtures as a stage: corpus documents -> packed token shards.

:class:`MixtureConfig` is one of the profile's ``mixture.stage1`` / ``mixture.stage2`` sections:
category ratios and a token budget (exact accounting in ``forge.corpus.packing.select_mixture``),
then packing with the corpus tokenizer (``forge.corpus.packing.pack_documents``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forge.core.io import atomic_write_json
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.core.warehouse import iter_rows


class MixtureConfig(StageConfig):
    """``mixture.stage1`` / ``mixture.stage2``: what share of each category, how many tokens."""

    #: relative weight per category (normalized); a category left out is not used
    ratios: dict[str, float] = {"agent": 1.0, "code": 1.0, "text": 1.0}
    #: tokens (estimated at selection, exact after packing) the mixture holds
    token_budget: int
    #: seed of the stable selection order
    seed: int = 0
    #: only documents marked ``is_seed`` (the high-quality agent data)
    seed_only: bool = False
    #: repeat documents when a category runs out before its share
    allow_repeat: bool = False


def _category_docs(warehouse: Path, seed_only: bool) -> Callable[[str], Iterator[dict[str, Any]]]:
    where = "split = 'train'" + (" and is_seed" if seed_only else "")

    def docs(category: str) -> Iterator[dict[str, Any]]:
        yield from iter_rows(
            warehouse,
            f"select doc_id, category, text, n_tokens_est from fct_corpus_documents "
            f"where {where} and category = '{category}' order by doc_id",
        )

    return docs


def build_packed_mixture(
    cfg: MixtureConfig, *, warehouse: Path, tokenizer_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """Select documents by the configured category ratios and token budget, pack them into shards."""
    from forge.corpus.packing import pack_documents, select_mixture

    ratios = dict(cfg.ratios)
    selected, report = select_mixture(
        _category_docs(warehouse, cfg.seed_only),
        ratios,
        cfg.token_budget,
        seed=cfg.seed,
        estimate_tokens=lambda d: int(d.get("n_tokens_est") or 1),
        allow_repeat=cfg.allow_repeat,
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


MIXTURE_STAGE = Stage("cpt_shards", MixtureConfig, build_packed_mixture)
