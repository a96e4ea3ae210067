"""A state home moved or copied to another path keeps its fingerprints (nothing rebuilds)."""

from __future__ import annotations

from pathlib import Path

from assets.factory import input_fingerprint, portable
from assets.profile import REPO_ROOT


def test_paths_under_the_home_or_the_repository_count_by_their_place_in_it():
    anchors = [("/a/home", "$HEPHAESTUS_HOME"), ("/a", "$REPO")]
    value = {
        "cache": Path("/a/home/cache"),
        "dirs": ["/a/home", "/a/tests/fixtures", "/elsewhere/x", "/a/homes/not-the-home"],
        "n": 3,
        "nested": ({"uri": "/a/home/raw/t"},),
    }
    assert portable(value, anchors) == {
        "cache": "$HEPHAESTUS_HOME/cache",
        "dirs": ["$HEPHAESTUS_HOME", "$REPO/tests/fixtures", "/elsewhere/x", "$REPO/homes/not-the-home"],
        "n": 3,
        "nested": [{"uri": "$HEPHAESTUS_HOME/raw/t"}],
    }


def test_the_same_inputs_in_two_homes_have_one_fingerprint(tmp_path, monkeypatch):
    def fp(home: Path, outside: str = "/opt/data") -> str:
        monkeypatch.setenv("HEPHAESTUS_HOME", str(home))
        return input_fingerprint(
            code="c1",
            config={"source_dir": str(home / "cache" / "openapi"), "fixtures": str(REPO_ROOT / "tests")},
            io={"cache_dir": home / "cache", "outside": outside},
            extras=[{"path": str(home / "data" / "corpus")}],
        )

    first, moved = fp(tmp_path / "one"), fp(tmp_path / "elsewhere" / "two")
    assert first == moved
    assert fp(tmp_path / "one", outside="/opt/other") != first  # a path outside both still counts as it is
