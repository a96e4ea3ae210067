"""Corpus documents that share word n-grams with an evaluation item: one row per (document, item).

Benchmarks and what of them is matched (``benchmark`` / ``reason``): BFCL's test questions
(``question``) and its function documents (``function_doc``), HumanEval's prompts (``prompt``) and
canonical solutions (``canonical_solution``), and the held-out providers' API documentation
(``heldout_api`` / ``api_doc``, the unseen-API benchmark). The matching lives in
``forge.text.decontam`` so it is tested without dbt; this model feeds it the tables and returns
what it found.
"""

import pandas as pd

from forge.text.decontam import CONTAMINATION_COLUMNS, benchmark_index, contamination_rows


def _rows(relation, columns):
    """Stream a DuckDB relation as dicts, a batch at a time (memory stays flat)."""
    reader = relation.select(", ".join(columns)).to_arrow_reader(10_000)
    for batch in reader:
        yield from batch.to_pylist()


def model(dbt, session):
    dbt.config(materialized="table")
    n = int(dbt.config.get("ngram") or 8)

    bfcl = dbt.ref("stg_bfcl__items")
    humaneval = dbt.ref("stg_humaneval__items")
    # Held-out APIs are matched on their own words (names, summaries, descriptions), not on our
    # rendered documentation, whose template phrases every API document shares.
    heldout = dbt.ref("int_heldout_api_operations")
    docs = dbt.ref("int_deduplicated_corpus_documents")

    index = benchmark_index(
        n,
        bfcl_questions=(
            (r["item_id"], r["question_text"]) for r in _rows(bfcl, ["item_id", "question_text"])
        ),
        bfcl_functions=(r["functions"] for r in _rows(bfcl, ["functions::varchar as functions"])),
        humaneval=(
            (r["item_id"], r["part"], r["text"]) for r in _rows(humaneval, ["item_id", "part", "text"])
        ),
        heldout_apis=(
            (r["api_id"], " ".join(filter(None, [r["summary"], r["description"]])))
            for r in _rows(heldout, ["api_id", "summary", "description"])
        ),
    )
    found = list(contamination_rows(_rows(docs, ["doc_id", "text"]), index))
    return pd.DataFrame(found, columns=CONTAMINATION_COLUMNS)
