"""A packed mixture's composition as a PNG: tokens per category, split by source.

Counted from the packed directory's lineage files (``contracts.packed``): every span of
``spans.parquet`` is a run of one document's tokens in a shard, and ``documents.parquet`` names the
document's category and subcategory (its source: ``openapi``, ``trajectory``, ``stdlib``...). So the
picture counts the tokens the trainer really reads, epochs and truncation included, not the
documents' sizes before packing.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts.packed import DOCUMENTS_NAME, SPANS_NAME


def tokens_by_source(packed_dir: Path) -> dict[str, dict[str, int]]:
    """``{category: {source: tokens}}`` of a packed directory (source = the document's
    ``subcategory``, or its ``source_table`` when it has none)."""
    spans_path, docs_path = packed_dir / SPANS_NAME, packed_dir / DOCUMENTS_NAME
    if not spans_path.exists() or not docs_path.exists():
        return {}
    spans = pq.read_table(spans_path, columns=["doc_id", "length"])
    docs = pq.read_table(docs_path, columns=["doc_id", "category", "subcategory", "source_table"])
    source = pc.coalesce(docs["subcategory"], docs["source_table"], "unknown")
    docs = docs.select(["doc_id", "category"]).append_column("source", source)
    joined = spans.join(docs, "doc_id", join_type="left outer")
    grouped = joined.group_by(["category", "source"]).aggregate([("length", "sum")]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for row in grouped:
        out.setdefault(row["category"] or "unknown", {})[row["source"] or "unknown"] = int(row["length_sum"])
    return {cat: dict(sorted(src.items(), key=lambda kv: -kv[1])) for cat, src in sorted(out.items())}


def plot_mixture(packed_dir: Path, path: Path, title: str) -> Path | None:
    """A horizontal stacked bar per category (tokens, split by source, share of the total in the
    label), written to ``path``; None when the directory has no lineage files."""
    composition = tokens_by_source(packed_dir)
    if not composition:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = sum(sum(src.values()) for src in composition.values()) or 1
    cats = list(composition)
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.55 * len(cats)))
    colors: dict[str, str] = {}
    for y, cat in enumerate(cats):
        left = 0
        for source, n in composition[cat].items():
            color = colors.setdefault(source, f"C{len(colors) % 10}")
            ax.barh(
                y,
                n,
                left=left,
                color=color,
                label=source if source not in ax.get_legend_handles_labels()[1] else None,
            )
            left += n
        ax.text(left, y, f" {left:,} ({100 * left / total:.0f}%)", va="center", fontsize=8)
    ax.set_yticks(range(len(cats)), cats)
    ax.invert_yaxis()
    ax.set_xlabel("tokens in the packed shards")
    ax.set_xlim(0, max(sum(s.values()) for s in composition.values()) * 1.35)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
