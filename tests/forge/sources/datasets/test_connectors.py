"""Dataset connectors: every format's fixture maps to normalized rows with the expected patterns,
validity and counted rejects; sources (JSONL/JSON/Parquet, URL on 127.0.0.1, hub id) and the
ingest entry point behave."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.tables import TRAJECTORIES
from forge.core.stats import StepStats
from forge.sources.datasets import (
    DATASET_TRAJECTORIES,
    FORMATS,
    ingest_datasets,
    iter_dataset_trajectories,
    license_allowed,
)
from forge.sources.datasets.common import RowError, normalize_tool
from forge.sources.datasets.pycalls import parse_calls
from forge.text.render import render_trajectory_text, sft_record

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "datasets"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# format -> (rows out as (pattern, is_valid, invalid_reason), drops by reason)
EXPECTED = {
    "xlam": (
        [
            ("simple", True, None),
            ("parallel", True, None),
            ("multiple", True, None),
            ("irrelevance", True, None),
            ("simple", False, "arguments_invalid"),
        ],
        {"invalid_arguments_invalid": 1, "bad_tools_json": 1, "bad_json_line": 1},
    ),
    "toolace": (
        [
            ("parallel_multiple", True, None),
            ("multi_step", True, None),
            ("simple", False, "arguments_invalid"),
        ],
        {"invalid_arguments_invalid": 1, "bad_call_syntax": 1},
    ),
    "glaive": (
        [
            ("multiple", True, None),
            ("multiple", True, None),
            ("irrelevance", True, None),
            ("multiple", False, "arguments_invalid"),
        ],
        {"invalid_arguments_invalid": 1, "bad_functioncall": 1},
    ),
    "toolbench": (
        [("multi_step", True, None), ("multiple", False, "arguments_invalid")],
        {"invalid_arguments_invalid": 1, "gave_up": 1},
    ),
    "openai": (
        [("parallel", True, None), ("error_recovery", True, None)],
        {"orphan_tool_result": 1},
    ),
    "sharegpt": (
        [
            ("multi_step", True, None),
            ("multiple", False, "arguments_invalid"),
            ("irrelevance", True, None),
            ("multiple", False, "unknown_function"),
        ],
        {"invalid_arguments_invalid": 1, "invalid_unknown_function": 1, "bad_role": 1},
    ),
}


def _rows(fmt: str, path: Path | None = None, **spec) -> tuple[list[dict], StepStats]:
    stats = StepStats(fmt)
    spec = {
        "name": f"{fmt}-fixture",
        "format": fmt,
        "path": str(path or FIXTURES / fmt),
        "license": "MIT",
        **spec,
    }
    return list(iter_dataset_trajectories(spec, stats, created_at=T0)), stats


def test_every_format_has_a_fixture_and_an_expectation():
    assert set(EXPECTED) == set(FORMATS)
    assert all((FIXTURES / fmt).is_dir() for fmt in FORMATS)


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_fixture_maps_to_expected_rows_and_counted_rejects(fmt):
    rows, stats = _rows(fmt)
    expected_rows, expected_drops = EXPECTED[fmt]
    assert [(r["pattern"], r["is_valid"], r["invalid_reason"]) for r in rows] == expected_rows
    assert dict(stats.dropped) == expected_drops
    assert stats.n_kept == sum(1 for r in rows if r["is_valid"])
    assert all(stats.examples[reason] for reason in expected_drops)  # each reject is visible


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_rows_follow_the_normalized_schema(fmt):
    rows, _ = _rows(fmt)
    pa.Table.from_pylist(rows, schema=DATASET_TRAJECTORIES)  # types conform
    assert set(TRAJECTORIES.names) <= set(rows[0])
    for row in rows:
        assert row["source"] == f"{fmt}-fixture" and row["license"] == "MIT"
        assert row["generator"] == f"dataset:{fmt}"
        assert row["source_uri"].split("#")[0].startswith(str(FIXTURES / fmt))
        tools, messages, calls = (json.loads(row[k]) for k in ("tools", "messages", "calls"))
        for tool in tools:
            assert set(tool) == {"name", "description", "parameters"}
            assert isinstance(tool["parameters"], dict) and "properties" in tool["parameters"]
        ids = []
        for m in messages:
            assert m["role"] in ("system", "user", "assistant", "tool") and isinstance(m["content"], str)
            for c in m.get("tool_calls") or []:
                assert m["role"] == "assistant" and set(c) == {"id", "name", "arguments"}
                assert isinstance(c["arguments"], dict)
                ids.append(c["id"])
            if m["role"] == "tool":
                assert m["tool_call_id"] in ids and m["name"]
        assert [c["id"] for c in calls] == ids and row["n_calls"] == len(ids)
        assert all(c["executed"] is False for c in calls)
        assert row["n_calls_valid"] == sum(c["valid"] for c in calls)
        # both renderings accept the row
        assert "# Conversation" in render_trajectory_text(row)
        assert sft_record(row)["messages"] == messages


def test_trajectory_ids_are_stable_and_unique():
    ids = [r["trajectory_id"] for fmt in FORMATS for r in _rows(fmt)[0]]
    assert len(ids) == len(set(ids))
    assert ids == [r["trajectory_id"] for fmt in FORMATS for r in _rows(fmt)[0]]


def test_xlam_flat_parameters_become_json_schema():
    tool = normalize_tool(
        {
            "name": "f",
            "description": "d",
            "parameters": {
                "city": {"type": "str", "description": "c"},
                "units": {"type": "str, optional", "default": "metric"},
                "ids": {"type": "List[int]"},
            },
        }
    )
    params = tool["parameters"]
    assert params["type"] == "object" and params["required"] == ["city", "ids"]
    assert params["properties"]["ids"]["type"] == "array"
    assert params["properties"]["units"] == {"default": "metric", "type": "string"}


def test_openai_wrapper_is_unwrapped_and_bfcl_dialect_kept():
    tool = normalize_tool(
        {"type": "function", "function": {"name": "g", "parameters": {"type": "dict", "properties": {}}}}
    )
    assert tool == {"name": "g", "description": "", "parameters": {"type": "dict", "properties": {}}}
    with pytest.raises(RowError) as err:
        normalize_tool({"description": "no name"})
    assert err.value.reason == "bad_tool"


_USER = {"role": "user", "content": "hi"}
_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    "messages, reason",
    [
        # found by `make fuzz` (the random seed of 2026-12-02): an id that is a list crashed the set of ids
        ([_USER, {"role": "assistant", "content": "", "tool_calls": [{**_CALL, "id": [None]}]}], "bad_call_id"),
        ([_USER, {"role": "assistant", "content": "", "tool_calls": 5}], "bad_call"),
        (
            [_USER, {"role": "assistant", "content": "", "tool_calls": [_CALL]},
             {"role": "tool", "tool_call_id": ["c1"], "content": "x"}],
            "orphan_tool_result",
        ),
        ([_USER, {"role": "function", "name": ["f"], "content": "x"}], "bad_message"),
    ],
)  # fmt: skip
def test_wrongly_typed_call_ids_and_names_are_a_named_reject(messages, reason):
    from forge.sources.datasets.common import build_row
    from forge.sources.datasets.openai_chat import parse

    with pytest.raises(RowError) as caught:
        parsed = parse({"messages": messages}, "f#0")
        build_row(parsed, source="s", license=None, row_key="f#0", generator="g", created_at=T0)
    assert caught.value.reason == reason


def test_python_call_lists():
    calls = parse_calls(
        "[Market Trends API(trend_type='MARKET_INDEXES', n=-3), get_x(flag=true, opts={'a': [1, 2.5]}, none=None)]"
    )
    assert calls == [
        ("Market Trends API", {"trend_type": "MARKET_INDEXES", "n": -3}),
        ("get_x", {"flag": True, "opts": {"a": [1, 2.5]}, "none": None}),
    ]
    for bad in ("[f(x)]", "[f(a=open('x'))]", "f(a=1)", "[f(a=1]"):
        with pytest.raises(RowError):
            parse_calls(bad)


def test_license_allow_list():
    assert license_allowed("CC-BY-NC-4.0", ["*"]) and license_allowed(None, None)
    assert license_allowed("mit", ["MIT", "Apache-2.0"])
    assert not license_allowed("CC-BY-NC-4.0", ["MIT", "Apache-2.0"])
    assert license_allowed("MIT AND Apache-2.0", ["MIT", "Apache-2.0"])
    assert not license_allowed("MIT AND CC-BY-NC-4.0", ["MIT"])
    assert not license_allowed(None, ["MIT"])  # unknown is not allowed by a real list


def test_parquet_and_split_and_max_rows(tmp_path):
    records = [
        json.loads(line)
        for line in (FIXTURES / "sharegpt" / "tool_conversations.jsonl").read_text().splitlines()
    ]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(records[:1]), tmp_path / "data" / "test-00000-of-00001.parquet")
    rows, _ = _rows("sharegpt", tmp_path, split="train")
    assert [r["pattern"] for r in rows] == [p for p, _, _ in EXPECTED["sharegpt"][0]]
    assert rows[0]["source_uri"].endswith("train-00000-of-00001.parquet#0")
    rows, stats = _rows("sharegpt", tmp_path, split="test")
    assert len(rows) == 1
    rows, stats = _rows("sharegpt", tmp_path, split="train", max_rows=2)
    assert len(rows) == 2 and stats.notes["max_rows_reached"] == 1


def test_corrupt_files_are_counted_not_raised(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 nope")
    rows, stats = _rows("openai", tmp_path)
    assert rows == [] and stats.dropped == {"bad_json_file": 1, "bad_parquet_file": 1}


def test_spec_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format"):
        _rows("nope")
    with pytest.raises(ValueError, match="exactly one of"):
        _rows("xlam", url="http://127.0.0.1:9/x.jsonl")
    with pytest.raises(FileNotFoundError):
        _rows("xlam", tmp_path / "missing")


@pytest.fixture
def http_server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FIXTURES))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_is_downloaded_once_into_the_cache(http_server, tmp_path):
    url = f"{http_server}/glaive/glaive-function-calling-v2.jsonl"
    spec = {"name": "glaive-url", "format": "glaive", "url": url, "license": "Apache-2.0"}
    stats = StepStats("g")
    rows = list(iter_dataset_trajectories(spec, stats, cache_dir=tmp_path, created_at=T0))
    assert [r["is_valid"] for r in rows] == [True, True, True, False]
    assert rows[0]["source_uri"] == f"{url}#0"
    cached = list((tmp_path / "urls").iterdir())
    assert (
        len(cached) == 1
        and cached[0].read_bytes() == (FIXTURES / "glaive" / "glaive-function-calling-v2.jsonl").read_bytes()
    )
    # served from the cache afterwards: a cached file cut to its first line gives one row
    cached[0].write_text(cached[0].read_text().splitlines()[0] + "\n")
    again = list(iter_dataset_trajectories(spec, StepStats("g"), cache_dir=tmp_path, created_at=T0))
    assert [r["trajectory_id"] for r in again] == [rows[0]["trajectory_id"]]


def test_url_http_error_raises_and_leaves_no_partial_file(http_server, tmp_path):
    import httpx

    spec = {"name": "x", "format": "xlam", "url": f"{http_server}/missing.jsonl", "license": "MIT"}
    with pytest.raises(httpx.HTTPStatusError):
        list(iter_dataset_trajectories(spec, StepStats("x"), cache_dir=tmp_path))
    assert list((tmp_path / "urls").iterdir()) == []


def test_hub_id_goes_through_huggingface_hub(monkeypatch, tmp_path):
    import huggingface_hub

    seen = {}

    def fake_snapshot(**kwargs):
        seen.update(kwargs)
        return str(FIXTURES / "xlam")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    spec = {
        "name": "xlam-hub",
        "format": "apigen",
        "hub_id": "Salesforce/xlam-function-calling-60k",
        "license": "CC-BY-4.0",
    }
    rows = list(iter_dataset_trajectories(spec, StepStats("h"), cache_dir=tmp_path, created_at=T0))
    assert seen["repo_id"] == "Salesforce/xlam-function-calling-60k" and seen["repo_type"] == "dataset"
    assert len(rows) == 5
    assert rows[0]["source_uri"] == "hf://datasets/Salesforce/xlam-function-calling-60k/train.jsonl#0"


def test_ingest_writes_parts_marks_licenses_and_removes_stale(tmp_path):
    out = tmp_path / "raw" / "dataset_trajectories"
    out.mkdir(parents=True)
    (out / "part-009-old.parquet").write_bytes(b"stale")
    specs = [
        {"name": "xlam-60k", "format": "xlam", "path": str(FIXTURES / "xlam"), "license": "CC-BY-4.0"},
        {
            "name": "glaive-v2",
            "format": "glaive",
            "path": str(FIXTURES / "glaive"),
            "license": "CC-BY-NC-4.0",
        },
    ]
    meta = ingest_datasets(
        specs, out, allowed_licenses=["CC-BY-4.0", "Apache-2.0"], cache_dir=tmp_path, created_at=T0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "part-000-xlam-60k.parquet",
        "part-001-glaive-v2.parquet",
    ]
    table = [r for p in sorted(out.iterdir()) for r in pq.read_table(p).to_pylist()]
    assert meta["n_rows"] == len(table) == 9 and meta["n_valid"] == sum(r["is_valid"] for r in table) == 7
    assert meta["n_license_allowed"] == 5
    assert {r["source"]: r["is_license_allowed"] for r in table} == {"xlam-60k": True, "glaive-v2": False}
    assert meta["by_source"]["glaive-v2"]["drops"]["dropped_by_reason"]["bad_functioncall"] == 1
    dropped = pq.read_table(tmp_path / "raw" / "_dropped" / "dataset_trajectories.parquet").to_pylist()
    reasons = {d["reason"] for d in dropped}
    assert {"dataset:xlam-60k:bad_tools_json", "dataset:glaive-v2:bad_functioncall"} <= reasons
    # no datasets configured: one empty, readable part replaces the old ones
    meta = ingest_datasets([], out)
    assert meta["n_rows"] == 0 and [p.name for p in out.iterdir()] == ["part-000-empty.parquet"]
    assert pq.read_table(out / "part-000-empty.parquet").schema.names == DATASET_TRAJECTORIES.names


def test_ingest_rejects_duplicate_names(tmp_path):
    spec = {"name": "a", "format": "xlam", "path": str(FIXTURES / "xlam")}
    with pytest.raises(ValueError, match="unique"):
        ingest_datasets([spec, spec], tmp_path)


def test_copied_fixture_dir_keeps_working(tmp_path):
    """A directory with several formats' files is read whole: the JSON file and the JSONL line."""
    shutil.copy(FIXTURES / "openai" / "chat.jsonl", tmp_path / "a.jsonl")
    (tmp_path / "b.json").write_text(
        json.dumps({"data": [json.loads((FIXTURES / "openai" / "chat.jsonl").read_text().splitlines()[0])]})
    )
    rows, _ = _rows("openai", tmp_path)
    assert [r["pattern"] for r in rows] == ["parallel", "error_recovery", "parallel"]
