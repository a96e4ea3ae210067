"""Agent documents and synthesis read the deduplicated operations (dim_apis) from the warehouse:
a copy merged across versions is rendered and synthesized once; every API source is included."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

from contracts.tables import API_OPERATIONS, TRAJECTORIES
from forge.core.io import iter_parquet_rows, read_parquet_rows, write_parquet
from forge.synth.stage import SynthesisConfig, synthesize_trajectories
from forge.text.stage import AgentDocumentsConfig, render_agent_documents

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _op(source: str, provider: str, api_name: str, version: str, name: str) -> dict:
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "a city"}},
        "required": ["city"],
    }
    return {
        "api_id": f"{source}:{api_name}:{version}:{name}",
        "source": source,
        "provider": provider,
        "api_name": api_name,
        "version": version,
        "function_name": name,
        "method": "GET" if source == "openapi_directory" else "FUNCTION",
        "path": f"/{name}",
        "summary": f"Get the {name.replace('_', ' ')} of a city",
        "description": "",
        "parameters": json.dumps(params),
        "responses": json.dumps({"200": {"description": "OK"}}),
        "tags": "[]",
        "source_uri": f"https://{provider}/{version}/{name}",
        "license": "MIT",
        "fetched_at": T0,
        "content_sha256": f"{name}{version}",
    }


KEPT = [
    _op("openapi_directory", "weather.example", "weather-v2", "2.0", "get_forecast"),
    _op("openapi_directory", "weather.example", "weather-v2", "2.0", "get_alerts"),
    _op("web_docs", "docs.python.org", "json", "3.11", "json_dumps"),
    _op("hub_docs", "huggingface.co", "bert-base", "", "fill_mask"),
    _op("python_module", "stdlib", "math", "3.11", "math_sqrt"),
]
# the same operation in the older spec version (its own service file): merged into weather-v2 by dim_apis
COPY = _op("openapi_directory", "weather.example", "weather-v1", "1.0", "get_forecast")


@pytest.fixture
def warehouse(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    con.register("rows", pa.Table.from_pylist(KEPT))
    con.execute(
        "create table dim_apis as select * exclude (parameters, responses), parameters::json as parameters, "
        "responses::json as responses, 1 as n_copies, 1 as n_versions from rows"
    )
    con.close()
    return wh


def test_api_documents_come_from_dim_apis_once_per_operation(warehouse, tmp_path):
    empty = tmp_path / "traj"
    write_parquet(empty / "part-0.parquet", [], TRAJECTORIES)
    meta = render_agent_documents(
        AgentDocumentsConfig(), warehouse=warehouse, trajectory_dirs=[empty], out_dir=tmp_path / "docs"
    )
    docs = [d for d in read_parquet_rows(tmp_path / "docs") if d["subcategory"] == "api_doc"]
    assert meta["n_rows"] >= len(docs)
    groups = {d["source_row_id"].split("|")[0] for d in docs}
    assert groups == {"openapi_directory", "web_docs", "hub_docs", "python_module"}  # every source
    assert sum("get_forecast" in d["text"] for d in docs) == 1
    # reading the raw tables instead renders the merged copy a second time
    raw = tmp_path / "raw"
    write_parquet(raw / "part-0.parquet", [*KEPT, COPY], API_OPERATIONS)
    render_agent_documents(
        AgentDocumentsConfig(), api_dirs=[raw], trajectory_dirs=[empty], out_dir=tmp_path / "d2"
    )
    assert sum("get_forecast" in d["text"] for d in read_parquet_rows(tmp_path / "d2")) == 2
    with pytest.raises(ValueError, match="either"):
        render_agent_documents(
            AgentDocumentsConfig(),
            warehouse=warehouse,
            api_dirs=[raw],
            trajectory_dirs=[],
            out_dir=tmp_path / "x",
        )


def test_synthesis_reads_dim_apis(warehouse, tmp_path):
    meta = synthesize_trajectories(
        SynthesisConfig(per_api=2), heldout_providers=[], out_dir=tmp_path / "t", warehouse=warehouse
    )
    assert meta["input"] == "dim_apis" and meta["n_api_operations"] == len(KEPT)
    used = {a for row in iter_parquet_rows(tmp_path / "t") for a in row["api_ids"]}
    assert used and used <= {op["api_id"] for op in KEPT}
    assert not list(tmp_path.glob(".t.*"))  # the exported input is removed
