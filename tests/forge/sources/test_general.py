"""General code and text documents from local files, installed packages and the stdlib."""

from __future__ import annotations

from pathlib import Path

from forge.core.stats import StepStats
from forge.sources.general import iter_code_documents, iter_text_documents, module_docstrings_text


def test_code_documents_from_directory_with_counted_skips(tmp_path: Path) -> None:
    (tmp_path / "b.py").write_text("def b():\n    return 2\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "big.py").write_text("y = 1\n" * 1000)
    (tmp_path / "latin.py").write_bytes(b"s = '\xe9t\xe9'\n")
    (tmp_path / "notes.txt").write_text("ignored: not python")
    stats = StepStats("code")
    rows = list(iter_code_documents([str(tmp_path)], max_bytes_per_file=500, stats=stats))
    assert [Path(r["uri"]).name for r in rows] == ["a.py", "b.py"]  # sorted, deterministic
    assert stats.dropped == {"file_too_large": 1, "undecodable": 1}
    row = rows[1]
    assert row["language"] == "python" and row["n_chars"] == len(row["text"]) and len(row["doc_id"]) == 20
    assert row["uri"] == str((tmp_path / "b.py").resolve())


def test_stdlib_and_package_roots() -> None:
    stats = StepStats("code")
    rows = list(iter_code_documents(["stdlib"], max_files=20, stats=stats))
    assert len(rows) == 20 and all(r["license"] == "PSF-2.0" for r in rows)
    assert not any("/test/" in r["uri"] or "site-packages" in r["uri"] for r in rows)
    pkg = list(iter_code_documents(["package:pyyaml"], max_files=3))
    assert (
        len(pkg) == 3 and all("yaml" in Path(r["uri"]).parent.name for r in pkg) and pkg[0]["license"] != ""
    )
    missing = StepStats("m")
    assert list(iter_code_documents(["package:no-such-dist-xyz"], stats=missing)) == []
    assert missing.dropped == {"package_not_found": 1}


def test_installed_files_are_named_by_what_they_belong_to_not_where_they_lie() -> None:
    """The stdlib's and installed packages' documents get URIs (and so ``doc_id``s) without the install
    paths: two clones of the project, or two machines, give the same ids to the same files (the ids
    decide the held-out split and the retrieval folds; a venv path in them changed both per clone)."""
    import sys
    import sysconfig

    rows = [
        *iter_code_documents(["stdlib"], max_files=5),
        *iter_code_documents(["package:pyyaml"], max_files=2),
        *iter_text_documents(["module_docstrings"], max_docs=2),
        *iter_text_documents(["package_metadata"], max_docs=2),
    ]
    places = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    assert len(rows) == 11 and not any(place in r["uri"] for r in rows for place in places)
    by_source = {r["source"]: r["uri"] for r in rows}
    version = ".".join(map(str, sys.version_info[:3]))
    assert by_source["python_stdlib_source"].startswith(f"stdlib:python-{version}!/")
    assert by_source["module_docstrings"].startswith(f"stdlib:python-{version}!/")
    assert by_source["module_docstrings"].endswith("#docstrings")
    assert (
        by_source["package:PyYAML"].startswith("package:PyYAML-") and "!/yaml/" in by_source["package:PyYAML"]
    )
    assert by_source["package_metadata"].startswith("package:") and by_source["package_metadata"].endswith(
        "!/METADATA"
    )


def test_module_docstrings_via_ast_without_import(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text('"""Module doc."""\nraise SystemExit("never imported")\n'
                   'def f():\n    """F doc."""\ndef _g():\n    """hidden"""\nclass C:\n    """C doc."""\n')  # fmt: skip
    assert module_docstrings_text(mod) == "Module doc.\n\nf\n\nF doc.\n\nC\n\nC doc."


def test_text_documents_sources(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\nSome words here.")
    (tmp_path / "b.rst").write_text("   \n")
    (tmp_path / "c.bin").write_bytes(b"\x00\x01")
    stats = StepStats("text")
    local = list(iter_text_documents([str(tmp_path)], stats=stats))
    assert [r["title"] for r in local] == ["a.md"] and stats.dropped == {"empty": 1}
    docs = list(iter_text_documents(["module_docstrings"], max_docs=5))
    assert len(docs) == 5 and all(r["uri"].endswith("#docstrings") and r["language"] == "en" for r in docs)
    meta = list(iter_text_documents(["package_metadata"], max_docs=5))
    assert len(meta) == 5 and all(r["source"] == "package_metadata" and r["n_chars"] > 0 for r in meta)
