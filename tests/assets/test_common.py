"""What every Python asset does around its library call, when a run is killed halfway: a rebuild in
place never leaves the previous marker over new files, and resumable work is resumed only for the
inputs it was made from (both found by ``tests/integration/test_kill_graph.py``)."""

from pathlib import Path

import pytest

from assets.common import RUN_FINGERPRINT, materialize_stage, start_fresh_unless_resuming
from forge.core.markers import read_marker, write_marker


class Killed(BaseException):
    """Stands in for a SIGKILL halfway through a build (nothing after it runs)."""


def test_a_rebuild_in_place_withdraws_the_stale_marker_first(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-0.parquet").write_text("old 0")
    (out / "part-1.parquet").write_text("old 1")
    write_marker(out, "old-inputs", {"n_rows": 2})

    def killed_build():
        (out / "part-0.parquet").write_text("new 0")  # one file rewritten, the other not yet
        raise Killed

    with pytest.raises(Killed):
        materialize_stage(None, out, "new-inputs", killed_build)
    # a mix of old and new files that nothing claims complete (it was "old-inputs" before the fix)
    assert read_marker(out) is None

    def build():
        (out / "part-0.parquet").write_text("new 0")
        (out / "part-1.parquet").write_text("new 1")
        return {"n_rows": 2}

    materialize_stage(None, out, "new-inputs", build)
    assert read_marker(out)["fingerprint"] == "new-inputs"


def test_resumable_work_is_kept_for_the_same_inputs_only(tmp_path: Path):
    work = tmp_path / "work"
    start_fresh_unless_resuming(work, "inputs-a")
    (work / "runs" / "r1").mkdir(parents=True)
    (work / "runs" / "r1" / "record.json").write_text("[]")  # a finished grid run, then a kill

    start_fresh_unless_resuming(work, "inputs-a")  # the same inputs: resumed
    assert (work / "runs" / "r1" / "record.json").exists()

    write_marker(work, "inputs-a")
    start_fresh_unless_resuming(work, "inputs-b")  # other inputs: never resumed into the new output
    assert not (work / "runs").exists() and read_marker(work) is None
    assert (work / RUN_FINGERPRINT).read_text() == "inputs-b"


def test_work_without_a_stamp_is_not_resumed(tmp_path: Path):
    """Work left by code that wrote no stamp (or by hand) is of unknown inputs: removed."""
    work = tmp_path / "work"
    (work / "shards" / "s000").mkdir(parents=True)
    (work / "shards" / "s000" / "_PACKED").write_text("ok\n")
    start_fresh_unless_resuming(work, "inputs-a")
    assert not (work / "shards").exists()


def test_a_killed_crawl_leaves_no_old_marker_over_its_api_rows(tmp_path: Path, monkeypatch):
    """The crawl writes raw/web_docs_operations beside raw/documents; that second directory's
    marker goes before the crawl rewrites it (it is written again when the crawl is done or fresh)."""
    from dagster import materialize

    import assets.ingest
    from assets.resources import ForgeResource

    profile = ForgeResource(profile="micro", home=str(tmp_path))
    apis = profile.paths.raw("web_docs_operations")
    apis.mkdir(parents=True)
    (apis / "toolkit-docs.parquet").write_text("old")
    write_marker(apis, "last-week")

    def killed_crawl(context, stage, config, out_dir, **io):
        (io["apis_dir"] / "toolkit-docs.parquet").write_text("new")
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(assets.ingest, "stage_asset", killed_crawl)
    result = materialize([assets.ingest.web_docs_crawl], resources={"profile": profile}, raise_on_error=False)
    assert not result.success
    assert read_marker(apis) is None
