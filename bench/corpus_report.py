"""What a corpus build produced, from its warehouse: tokens per category and source, near-duplicates
removed per source, drops per filter reason, contamination, retrieval.

    python bench/corpus_report.py --warehouse .hephaestus/<profile>/warehouse.duckdb [--exact] [--out FILE]

Reads the marts the graph built (``fct_corpus_documents``, ``stg_forge__near_duplicate_clusters``,
``fct_drops_by_reason``, ``fct_contamination``, ``stg_forge__retrieval_scores``), read-only.
Tokens are the corpus's estimate (``n_tokens_est``); with ``--exact`` every document is also encoded
by the build's trained tokenizer (``data/corpus/tokenizer``; minutes on 2 cores for ~200M tokens).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forge.core.warehouse import connect  # noqa: E402


def _table(header: list[str], rows: list[tuple]) -> list[str]:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
    ]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _exact_tokens(con, tokenizer_dir: Path) -> dict[tuple[str, str], int]:
    """Tokens per (category, source) by the trained tokenizer, in batches of 1,000 documents."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    counts: dict[tuple[str, str], int] = {}
    cur = con.execute("select category, subcategory, text from fct_corpus_documents")
    while batch := cur.fetchmany(1000):
        for (cat, sub, _), enc in zip(batch, tok.encode_batch([t or "" for *_, t in batch]), strict=True):
            counts[(cat, sub)] = counts.get((cat, sub), 0) + len(enc.ids)
    return counts


def report(warehouse: Path, exact: bool) -> str:
    con = connect(warehouse)
    lines = [f"# Corpus build report — {date.today().isoformat()} — {warehouse}", ""]
    rows = con.execute(
        "select category, subcategory, count(*), sum(n_tokens_est)::bigint from fct_corpus_documents "
        "group by all order by 1, 4 desc"
    ).fetchall()
    header = ["category", "source", "documents", "tokens (estimate)"]
    if exact:
        t = time.perf_counter()
        counts = _exact_tokens(con, warehouse.parent / "data" / "corpus" / "tokenizer")
        rows = [(*r, counts.get((r[0], r[1]), 0)) for r in rows]
        header.append(f"tokens (trained tokenizer, {time.perf_counter() - t:.0f} s)")
    totals = con.execute(
        "select category, count(*), sum(n_tokens_est)::bigint from fct_corpus_documents group by 1 order by 1"
    ).fetchall()
    if exact:
        totals = [(*t, sum(r[4] for r in rows if r[0] == t[0])) for t in totals]
    lines += ["## Tokens per category", "", *_table(["category", "documents", *header[3:]], totals), ""]
    lines += ["## Tokens per category and source", "", *_table(header, rows), ""]
    near = con.execute(
        "select category, source, count(distinct cluster_id), count(*) filter (where not is_kept), "
        "round(avg(similarity_to_kept) filter (where not is_kept), 3) "
        "from stg_forge__near_duplicate_clusters group by all order by 1, 4 desc"
    ).fetchall()
    lines += [
        "## Near-duplicates removed (MinHash LSH clusters; one document kept per cluster)",
        "",
        *_table(["category", "source", "clusters", "removed", "mean similarity to the kept one"], near),
        "",
    ]
    drops = con.execute(
        "select asset, step, reason, n_dropped from fct_drops_by_reason order by 4 desc, 1, 2, 3"
    ).fetchall()
    lines += [
        "## Drops by asset, step and reason (fct_drops_by_reason: full counts)",
        "",
        *_table(["asset", "step", "reason", "dropped"], drops),
        "",
    ]
    contam = con.execute(
        "select benchmark, reason, count(distinct doc_id), count(*) from fct_contamination group by all order by 1, 2"
    ).fetchall()
    lines += [
        "## Contamination (documents removed from training)",
        "",
        *_table(["benchmark", "matched on", "documents", "matches"], contam),
        "",
    ]
    retrieval = con.execute(
        "select source_table, count(*), count(*) filter (where is_retrieved) from stg_forge__retrieval_scores group by 1 order by 1"
    ).fetchall()
    lines += ["## Retrieval", ""]
    lines += (
        _table(["general source", "documents scored", "retrieved"], retrieval)
        if retrieval
        else ["off in this profile (no document scored)"]
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument(
        "--exact", action="store_true", help="count tokens with the build's trained tokenizer too"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = report(args.warehouse, args.exact)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
