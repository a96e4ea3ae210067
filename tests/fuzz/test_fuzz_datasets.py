"""Fuzzing the dataset connectors: every format's records with fields of the wrong type, calls whose
arguments are JSON text or not, truncated lines and enormous rows.

Properties: a format's parser returns a conversation or raises its own ``RowError`` (a counted drop
reason); the file reader and the whole dataset ingest never raise on a bad file, they count.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from forge.core.stats import StepStats
from forge.sources.datasets.common import RowError, build_row
from forge.sources.datasets.ingest import iter_dataset_trajectories
from forge.sources.datasets.registry import FORMATS, parser_for
from forge.sources.datasets.sources import iter_file_records
from tests.fuzz.fuzzing import bounded

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
FILES = {"xlam": "xlam/train.jsonl", "toolace": "toolace/data.json", "glaive": "glaive/glaive-function-calling-v2.jsonl",
         "toolbench": "toolbench/toolllama_G1_train.json", "openai": "openai/chat.jsonl",
         "sharegpt": "sharegpt/tool_conversations.jsonl"}  # fmt: skip
RECORDS = {
    fmt: [rec for _, rec in iter_file_records(DATA / rel, StepStats("f"))] for fmt, rel in FILES.items()
}

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> object:
    """A real record of ``fmt`` with some of its values (at any depth) replaced or re-encoded."""
    record = json.loads(json.dumps(draw(st.sampled_from(RECORDS[fmt]))))
    for _ in range(draw(st.integers(1, 4))):
        node, parent, key = record, None, None
        for _ in range(draw(st.integers(0, 5))):
            keys = (
                list(node)
                if isinstance(node, dict)
                else list(range(len(node)))
                if isinstance(node, list)
                else []
            )
            if not keys:
                break
            parent, key = node, draw(st.sampled_from(keys))
            node = node[key]
        how = draw(st.integers(0, 3))
        new = (draw(json_values) if how == 0 else json.dumps(node) if how == 1
               else (json.dumps(node)[: draw(st.integers(0, 40))]) if how == 2 else None)  # fmt: skip
        if parent is None:
            record = new
        else:
            parent[key] = new
    return record


@given(st.data(), st.sampled_from(sorted(FORMATS)))
def test_a_parser_maps_a_record_or_names_why_not(data: st.DataObject, fmt: str) -> None:
    record = data.draw(mutated(fmt))

    def parse_and_build() -> None:
        try:
            parsed = parser_for(fmt)(record, "fuzz#0")
            build_row(
                parsed, source="fuzz", license=None, row_key="fuzz#0", generator="fuzz", created_at=None
            )
        except RowError:
            pass

    bounded(f"datasets_{fmt}", parse_and_build)


@given(st.lists(st.one_of(st.binary(max_size=200), st.just(b"[" * 100_000), st.just(b'{"a": "' + b"x" * 300_000 + b'"}')),
                max_size=6), st.sampled_from(sorted(FORMATS)))  # fmt: skip
def test_bad_files_are_counted_never_raised(tmp_path_factory, lines: list[bytes], fmt: str) -> None:
    folder = tmp_path_factory.mktemp("ds")
    good = (DATA / FILES[fmt]).read_bytes()
    suffix = FILES[fmt].rsplit(".", 1)[1]
    body = b"\n".join([*lines, *good.splitlines()]) if suffix == "jsonl" else b"".join(lines) + good
    (folder / f"data.{suffix}").write_bytes(body)
    stats = StepStats("fuzz")
    spec = {"name": "fuzz", "format": fmt, "path": str(folder), "max_row_bytes": 200_000}
    rows = bounded("datasets_files", lambda: list(iter_dataset_trajectories(spec, stats, cache_dir=folder)))
    assert stats.n_in >= len(rows)
