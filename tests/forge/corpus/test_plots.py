"""A packed mixture's composition counts the tokens the trainer reads (spans), per category and source."""

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.packed import DOCUMENTS_NAME, SPANS_NAME
from forge.corpus.plots import plot_mixture, tokens_by_source


def test_tokens_by_category_and_source_from_the_spans(tmp_path):
    docs = pa.table(
        {
            "doc_id": ["a", "b", "c"],
            "category": ["agent", "agent", "code"],
            "subcategory": ["openapi", None, "stdlib"],
            "source_table": ["raw.agent_documents", "raw.trajectories", "raw.code_documents"],
        }
    )
    # doc a used twice (two epochs), b split across two shards
    spans = pa.table({"doc_id": ["a", "a", "b", "b", "c"], "length": [10, 10, 5, 7, 30]})
    pq.write_table(docs, tmp_path / DOCUMENTS_NAME)
    pq.write_table(spans, tmp_path / SPANS_NAME)
    assert tokens_by_source(tmp_path) == {
        "agent": {"openapi": 20, "raw.trajectories": 12},
        "code": {"stdlib": 30},
    }
    assert plot_mixture(tmp_path, tmp_path / "m.png", "t").read_bytes().startswith(b"\x89PNG")
    assert plot_mixture(tmp_path / "missing", tmp_path / "n.png", "t") is None
