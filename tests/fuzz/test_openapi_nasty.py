"""The hand-made nasty specs (tests/fixtures/nasty/openapi): each is a counted skip or a kept
operation with its defects, through the library, the parallel ingest and ``hephaestus ingest openapi``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from cli.main import main as cli_main
from forge.core.stats import StepStats
from forge.sources.openapi.directory import SpecBounds, openapi_rows
from forge.sources.openapi.ingest import write_openapi_parquet
from forge.synth.executor import MockExecutor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NASTY = FIXTURES / "nasty" / "openapi"
GOOD = FIXTURES / "openapi"

#: nasty files that are not loadable specs, and the reason each must be skipped for
BAD = {
    "alias-cycle.yaml": "max_depth",
    "binary.json": "malformed_spec",
    "binary.yaml": "malformed_spec",
    "deep-nesting.json": "max_depth",
    "deep-nesting.yaml": "malformed_spec",  # libyaml's own flow-level limit says it first
    "empty.json": "malformed_spec",
    "empty.yaml": "not_an_openapi_document",
    "non-utf8.json": "malformed_spec",
    "non-utf8.yaml": "malformed_spec",
    "not-openapi.json": "not_an_openapi_document",
    "truncated.json": "malformed_spec",
    "yaml-tags.yaml": "malformed_spec",  # a python/object tag is refused by the safe loader
}


def _ids(out: Path) -> set[str]:
    return set(
        ds.dataset(sorted(out.glob("openapi-*.parquet"))).to_table(columns=["api_id"]).column(0).to_pylist()
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_every_nasty_spec_is_a_named_skip_or_a_row(tmp_path: Path, workers: int) -> None:
    ops, specs, bad = StepStats("o"), StepStats("s"), []
    n = write_openapi_parquet(
        NASTY, tmp_path / "out", stats=ops, spec_stats=specs, workers=workers, bad_files=bad
    )
    got = {Path(b["file"]).name: b["reason"] for b in bad}
    assert got == BAD
    assert specs.n_dropped == len(BAD) and specs.n_kept == len(list(NASTY.iterdir())) - len(BAD)
    assert n == len(_ids(tmp_path / "out")) > 0


def test_in_process_rows_equal_the_parallel_ones(tmp_path: Path) -> None:
    rows = list(openapi_rows(NASTY))
    write_openapi_parquet(NASTY, tmp_path / "out", workers=2)
    assert {r["api_id"] for r in rows} == _ids(tmp_path / "out")


def test_dangling_refs_and_bad_locations_are_defects_of_their_operation() -> None:
    rows = {r["function_name"]: r for r in openapi_rows(NASTY, providers=["dangling-refs"])}
    defects = json.loads(rows["dangling"]["defects"])
    reasons = {(d["reason"], d["detail"]) for d in defects}
    assert ("parameter_bad_location", "q: in='querry'") in reasons
    assert ("unresolved_ref", "parameter #/components/parameters/Nowhere") in reasons
    assert ("unresolved_ref", "#/components/schemas/Gone") in reasons  # Chain1 -> Chain2 -> nowhere
    assert json.loads(rows["fine"]["defects"]) == []


def test_synthesis_never_validates_against_an_unresolved_schema() -> None:
    rows = list(openapi_rows(NASTY, providers=["dangling-refs"]))
    ex = MockExecutor(rows)
    result = ex.call("dangling", {"id": "1", "filter": {"anything": True}})
    assert not result.validated and not result.ok
    assert "unresolved $ref" in (result.error or "")
    assert ex.call("fine", {"n": 3}).validated


def test_bounds_from_config_name_the_bound(tmp_path: Path) -> None:
    bounds = SpecBounds(max_file_bytes=150_000, max_depth=20, max_operations=1, time_limit_s=30)
    ops, specs, bad = StepStats("o"), StepStats("s"), []
    write_openapi_parquet(NASTY, tmp_path / "out", stats=ops, spec_stats=specs, bounds=bounds, bad_files=bad)
    got = {Path(b["file"]).name: (b["reason"], b["detail"]) for b in bad}
    assert (
        got["huge-enum.json"][0] == "max_file_bytes" and "max_file_bytes=150,000" in got["huge-enum.json"][1]
    )
    assert (
        got["dangling-refs.json"][0] == "max_operations"
        and "max_operations=1" in got["dangling-refs.json"][1]
    )
    assert ops.dropped["max_operations"] >= 1 and specs.dropped["max_file_bytes"] == 1


def test_cli_ingest_of_good_and_malformed_specs_exits_0_and_lists_every_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_only, mixed = tmp_path / "good", tmp_path / "mixed"
    for name in ("getsandbox.com.json", "googleapis.com", "azure.com"):
        src = GOOD / name
        for dest in (good_only, mixed):
            dest.mkdir(exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    for f in NASTY.iterdir():
        shutil.copy(f, mixed / f.name)
    assert (
        cli_main(["ingest", "openapi", str(good_only), "--out", str(tmp_path / "o1"), "--workers", "1"]) == 0
    )
    capsys.readouterr()
    code = cli_main(["ingest", "openapi", str(mixed), "--out", str(tmp_path / "o2"), "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert _ids(tmp_path / "o1") <= _ids(tmp_path / "o2")  # every good operation kept
    listed = [line.strip() for line in out.splitlines() if line.startswith("  /")]
    for name, reason in BAD.items():
        assert any(line.startswith(str(mixed / name) + f": {reason}:") for line in listed), (name, out)
