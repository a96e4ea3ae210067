"""python_docs_dir: the installed python3.11-doc first, then the copy extracted under $HEPHAESTUS_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.crawler import pydocs
from forge.crawler.pydocs import EXTRACTED_PYTHON_DOCS, python_docs_candidates, python_docs_dir


def _plant(root: Path) -> Path:
    (root / "library").mkdir(parents=True)
    (root / "library" / "json.html").write_text("<html></html>")
    return root


@pytest.fixture
def no_system_docs(tmp_path, monkeypatch) -> Path:
    """The system location pointed at an empty directory, whatever this machine has installed."""
    fake = tmp_path / "system-html"
    monkeypatch.setattr(pydocs, "SYSTEM_PYTHON_DOCS", fake)
    return fake


def test_extracted_copy_under_hephaestus_home(tmp_path, monkeypatch, no_system_docs):
    home = tmp_path / "home"
    monkeypatch.setenv("HEPHAESTUS_HOME", str(home))
    assert python_docs_dir() is None
    extracted = _plant(home / EXTRACTED_PYTHON_DOCS)
    assert python_docs_dir() == extracted
    assert extracted == home / "cache/python3.11-doc/usr/share/doc/python3.11/html"
    assert python_docs_candidates() == [no_system_docs, extracted]


def test_system_copy_wins_and_an_incomplete_tree_does_not_count(tmp_path, monkeypatch, no_system_docs):
    home = tmp_path / "home"
    monkeypatch.setenv("HEPHAESTUS_HOME", str(home))
    extracted = _plant(home / EXTRACTED_PYTHON_DOCS)
    no_system_docs.mkdir()  # a directory without library/json.html is not the docs
    assert python_docs_dir() == extracted
    _plant(no_system_docs)
    assert python_docs_dir() == no_system_docs


def test_home_defaults_to_the_repo_and_can_be_passed(tmp_path, monkeypatch, no_system_docs):
    monkeypatch.delenv("HEPHAESTUS_HOME", raising=False)
    repo = Path(pydocs.__file__).resolve().parents[2]
    assert python_docs_candidates()[1] == repo / ".hephaestus" / EXTRACTED_PYTHON_DOCS
    extracted = _plant(tmp_path / "elsewhere" / EXTRACTED_PYTHON_DOCS)
    assert python_docs_dir(tmp_path / "elsewhere") == extracted


def test_profile_serve_dir_python3_11_doc_resolves_to_the_docs(tmp_path, monkeypatch, no_system_docs):
    from assets.profile import PYTHON_DOCS, load_profile, resolve_repo_path

    monkeypatch.setenv("HEPHAESTUS_HOME", str(tmp_path / "home"))
    assert resolve_repo_path(PYTHON_DOCS) == no_system_docs  # missing: a counted skip in the crawl
    extracted = _plant(tmp_path / "home" / EXTRACTED_PYTHON_DOCS)
    assert resolve_repo_path(PYTHON_DOCS) == extracted
    for name in ("default", "gpu"):
        (crawl,) = [c for c in load_profile(name)["sources"]["crawl"] if c["name"] == "python-docs"]
        assert crawl["serve_dir"] == PYTHON_DOCS
