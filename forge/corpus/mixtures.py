"""The continual pre-training mixtures as a stage: corpus documents -> packed token shards.

:class:`MixtureConfig` is one of the profile's ``mixture.stage1`` / ``mixture.stage2`` sections:
category ratios and a token budget in real tokens of the corpus tokenizer. Each category's
training documents are tokenized once into a resumable spool (:mod:`forge.corpus.spool`), chosen
by their exact counts (:mod:`forge.corpus.selection`) and packed with token-level lineage
(:mod:`forge.corpus.packing`); a killed build resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from contracts.packed import DOCUMENT_LINEAGE_COLUMNS
from forge.core.io import atomic_write_json
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.core.warehouse import iter_rows
from forge.corpus.packing import DEFAULT_SHARD_TOKENS, PackPlan, work_dir_for, write_packed
from forge.corpus.selection import interleave, select_mixture
from forge.corpus.spool import TokenEncoder, encode_to_spool


class MixtureConfig(StageConfig):
    """``mixture.stage1`` / ``mixture.stage2``: what share of each category, how many tokens."""

    #: relative weight per category (normalized); a category left out is not used. ``from_law``:
    #: the agent share the mixing-ratio law chose (the research assets resolve it before packing)
    ratios: dict[str, float] | Literal["from_law"] = {"agent": 1.0, "code": 1.0, "text": 1.0}
    #: tokens the mixture holds: ids + one EOS per document, counted with the corpus tokenizer
    token_budget: int
    #: seed of the selection and of the packing order
    seed: int = 0
    #: only documents marked ``is_seed`` (the high-quality agent data)
    seed_only: bool = False
    #: draw documents each at most once per pass, or independently with replacement
    sampling: Literal["without_replacement", "with_replacement"] = "without_replacement"
    #: how many passes over a category its selection may make (1: no document repeats
    #: without replacement); a category with fewer tokens than its share is repeated up to this
    max_epochs: float = 1.0
    #: cut one document per category to land exactly on its share (else: within one document)
    fill: bool = True
    #: token ids per shard file
    shard_tokens: int = DEFAULT_SHARD_TOKENS


def _category_docs(warehouse: Path, seed_only: bool, category: str) -> Iterator[dict[str, Any]]:
    where = "split = 'train'" + (" and is_seed" if seed_only else "")
    cols = ", ".join(dict.fromkeys([*DOCUMENT_LINEAGE_COLUMNS, "text"]))
    quoted = category.replace("'", "''")
    query = f"select {cols} from fct_corpus_documents where {where} and category = '{quoted}' order by doc_id"
    yield from iter_rows(warehouse, query)


def build_packed_mixture(
    cfg: MixtureConfig,
    *,
    warehouse: Path,
    tokenizer_dir: Path,
    out_dir: Path,
    on_shard: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Tokenize each category's training documents, select them by the configured ratios and
    exact token budget, pack them into shards with lineage; report what was achieved."""
    if cfg.ratios == "from_law":
        raise ValueError("mixture ratios 'from_law' must be resolved to the law's share before packing")
    encoder = TokenEncoder(tokenizer_dir)
    work = work_dir_for(out_dir)
    stats = StepStats("spool")
    spools, resumed = {}, {"parts_reused": 0, "parts_encoded": 0}
    for cat, ratio in cfg.ratios.items():
        if ratio > 0:
            docs = _category_docs(warehouse, cfg.seed_only, cat)
            spools[cat], counts = encode_to_spool(docs, encoder, work / "spool" / cat, stats=stats)
            for k, v in counts.items():
                resumed[k] += v
    ids = {cat: sp.index["doc_id"].to_pylist() for cat, sp in spools.items()}
    picks, report = select_mixture(
        {cat: (ids[cat], sp.n_tokens) for cat, sp in spools.items()},
        cfg.ratios,
        cfg.token_budget,
        seed=cfg.seed,
        sampling=cfg.sampling,
        max_epochs=cfg.max_epochs,
        fill=cfg.fill,
    )
    names, source, order = interleave(picks, ids, cfg.seed)
    plan = PackPlan(
        [spools[n] for n in names], source, order.index, order.n_tokens, order.truncated, order.epoch
    )
    manifest = write_packed(
        plan,
        encoder,
        out_dir,
        shard_tokens=cfg.shard_tokens,
        sampling=cfg.sampling,
        sources=report["sources"],
        on_shard=on_shard,
    )
    atomic_write_json(out_dir / "mixture_report.json", report)
    total = max(1, manifest["n_tokens"])
    table = [
        "| category | available tokens | target | selected | share | epochs | documents |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, s in report["sources"].items():
        table.append(
            f"| {c} | {s['available_tokens']:,} | {s['target_tokens']:,} | {s['selected_tokens']:,} | "
            f"{s['selected_tokens'] / total:.3f} | {s['epochs']} | {s['selected_documents']:,} |"
        )
    return {
        "tokens_md": "\n".join(table),
        "n_tokens": manifest["n_tokens"],
        "n_documents": manifest["n_documents"],
        "tokens_by_category": manifest["tokens_by_category"],
        "share_by_category": {k: round(v / total, 4) for k, v in manifest["tokens_by_category"].items()},
        "target_ratios": dict(cfg.ratios),
        "budget_met_by_category": {
            c: round(s["selected_tokens"] / s["target_tokens"], 4) if s["target_tokens"] else None
            for c, s in report["sources"].items()
        },
        "epochs_by_category": {c: s["epochs"] for c, s in report["sources"].items()},
        "n_shards": len(manifest["shards"]),
        "mixture_report": report,
        "spool_drops": dict(stats.dropped),
        **resumed,
    }


MIXTURE_STAGE = Stage("cpt_shards", MixtureConfig, build_packed_mixture)
