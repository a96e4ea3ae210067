"""``hephaestus trace SHARD OFFSET``: from a token of a packed mixture back to its document and the
URL or dataset row it came from, for a token of each category."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forge.corpus.mixtures import MixtureConfig, build_packed_mixture
from forge.corpus.tokenizer import train_tokenizer

URIS = {"agent": "https://api.example.test/openapi.json#get-/items", "code": "file:///lib/x.py"}


def _rows() -> list[dict]:
    rows = []
    for i in range(60):
        cat = ("agent", "code", "text")[i % 3]
        rows.append(
            {
                "doc_id": f"{cat}:{i:03d}",
                "category": cat,
                "subcategory": "trajectory" if cat == "agent" else cat,
                "text": f"{cat} document {i}: " + "alpha beta gamma café " * (3 + i % 7),
                "source_table": "dataset_trajectories" if cat == "agent" else f"{cat}_documents",
                "source_row_id": f"r{i}",
                "source_uri": URIS.get(cat, f"data/glaive.jsonl#{i}"),
                "license": "apache-2.0",
                "is_seed": True,
                "split": "train",
            }
        )
    return rows


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("trace")
    rows = _rows()
    tok = train_tokenizer([r["text"] for r in rows], root / "tok", 300)
    wh = root / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    con.register("rows", pa.Table.from_pylist(rows))
    con.execute("create table fct_corpus_documents as select * from rows")
    con.close()
    cfg = MixtureConfig(token_budget=1500, shard_tokens=256)
    build_packed_mixture(cfg, warehouse=wh, tokenizer_dir=tok, out_dir=root / "shards")
    return root / "shards", wh


def test_trace_a_token_of_each_category(cli, packed):
    out, wh = packed
    spans = pq.read_table(out / "spans.parquet").to_pylist()
    for cat in ("agent", "code", "text"):
        span = next(s for s in spans if s["category"] == cat and s["length"] > 3)
        shard = out / f"shard_{span['shard']:05d}.bin"
        r = cli("trace", shard, span["offset"] + 2, "--warehouse", wh)
        assert r.rc == 0, r.err
        assert f"doc_id            {span['doc_id']}" in r.out
        i = int(span["doc_id"].split(":")[1])
        assert URIS.get(cat, f"data/glaive.jsonl#{i}") in r.out and f"row r{i}" in r.out
        assert "fct_corpus_documents" in r.out and "⟦" in r.out
    r = cli("trace", "shard_00000.bin", 0, "--packed", out, "--json")
    info = json.loads(r.out)
    assert r.rc == 0 and info["lineage_from"] == "packed documents.parquet"
    assert info["doc_id"] == spans[0]["doc_id"] and info["token_in_document"] == 0


def test_trace_errors_are_one_line(cli, packed):
    out, _ = packed
    r = cli("trace", out / "shard_00000.bin", 256)
    assert r.rc == 1 and r.last.startswith("error: offset 256 is outside shard shard_00000.bin")
    r = cli("trace", "shard_00009.bin", 0)
    assert r.rc == 1 and "--packed" in r.last
    r = cli("trace", out / "shard_00000.bin", -1)
    assert r.rc == 2
