"""The SFT row: what the corpus step writes is what fine-tuning reads, line for line."""

from __future__ import annotations

import json

import pytest

from contracts.sft import SftRow, read_sft_jsonl, split_path, write_sft_jsonl
from forge.text.render import sft_record

MESSAGES = [
    {"role": "user", "content": "Weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [{"name": "w", "arguments": {"city": "Zürich"}}]},
]


def test_write_then_read_roundtrips(tmp_path):
    rows = [SftRow("a", MESSAGES, [{"name": "w"}]), SftRow("b", MESSAGES[:1], [])]
    path = split_path(tmp_path, "train")
    assert write_sft_jsonl(path, rows) == 2
    assert path.read_text() == "".join(json.dumps(r.to_json()) + "\n" for r in rows)
    assert [row for _, row in read_sft_jsonl(path)] == rows
    assert [row.has_assistant_turn for row in rows] == [True, False]
    write_sft_jsonl(path, [])
    assert path.read_text() == ""


def test_bad_rows_fail_where_they_are_made_or_read(tmp_path):
    with pytest.raises(ValueError, match="'messages'"):
        SftRow("x", [{"content": "no role"}], [])
    with pytest.raises(ValueError, match="'tools'"):
        SftRow("x", MESSAGES, {"name": "w"})
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "ok", "messages": MESSAGES}) + "\n\n" + '{"id": "no messages"}\n')
    reader = read_sft_jsonl(path)
    lineno, row = next(reader)
    assert lineno == 1 and row.tools == []  # tools may be left out
    with pytest.raises(ValueError, match=r"d\.jsonl:3: not an SFT row"):
        next(reader)
    with pytest.raises(ValueError, match="unknown SFT split"):
        split_path(tmp_path, "test")


def test_trajectory_rows_become_sft_rows():
    traj = {"trajectory_id": "t1", "messages": json.dumps(MESSAGES), "tools": None}
    assert sft_record(traj) == {"id": "t1", "messages": MESSAGES, "tools": []}
    assert SftRow.from_json(sft_record(traj)) == SftRow("t1", MESSAGES, [])
