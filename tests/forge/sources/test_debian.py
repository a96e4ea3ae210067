"""Debian documentation packages: dpkg-deb unpacking, man/info/HTML/text extraction, copyright licence."""

from __future__ import annotations

from pathlib import Path

from forge.core.io import read_parquet_rows
from forge.core.stats import StepStats
from forge.sources.debian import copyright_license, info_to_text, roff_to_text
from forge.sources.general import TextSourceConfig, ingest_text_documents, iter_text_documents
from tests.forge.sources.package_fixtures import COPYRIGHT, INFO, PROSE, ROFF, make_deb, make_wheel


def test_roff_to_text() -> None:
    text = roff_to_text(ROFF)
    assert "NAME\n\nfake - do fake things" in text
    assert "fake [-v] FILE" in text and "fake reads FILE and writes what it finds — nothing more." in text
    assert "\n-v, --verbose\nPrint more." in text
    assert "-v, --verbose" in text and "comment" not in text and ".TH" not in text and "\\f" not in text


def test_info_to_text() -> None:
    text = info_to_text(INFO)
    assert "Fake manual" in text and "Run it." in text
    assert "File:" not in text and "Tag Table" not in text and "\x00" not in text and "\x7f" not in text


def test_copyright_license(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc/p"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    assert copyright_license(tmp_path, "p") == "Apache-2.0"  # the Files: * stanza, not the first
    (doc / "copyright").write_text(
        "Debianized by someone.\n\nLicense:\n Redistribution and use in source and binary forms ...\n"
    )
    assert copyright_license(tmp_path, "p") == "BSD"  # free form: a well-known licence's words
    (doc / "copyright").write_text("This package was debianized by someone.\n")
    assert copyright_license(tmp_path, "p") == "unknown"
    assert copyright_license(tmp_path, "absent") == "unknown"


def test_documents_from_a_deb(tmp_path: Path) -> None:
    deb = make_deb(tmp_path)
    stats = StepStats("text")
    cache = tmp_path / "cache"
    rows = list(iter_text_documents([str(deb)], stats=stats, cache_dir=cache))
    by_path = {r["uri"].split("!/", 1)[1]: r for r in rows}
    assert sorted(by_path) == [
        "usr/share/doc/fake-doc/guide.txt",
        "usr/share/doc/fake-doc/html/index.html",
        "usr/share/info/fake.info.gz",
        "usr/share/man/man1/fake.1.gz",
    ]
    html = by_path["usr/share/doc/fake-doc/html/index.html"]
    assert html["title"] == "Fake Manual" and PROSE in html["text"] and "Home | Next" not in html["text"]
    assert "do fake things" in by_path["usr/share/man/man1/fake.1.gz"]["text"]
    assert all(r["source"] == "deb:fake-doc" and r["license"] == "Apache-2.0" for r in rows)
    assert rows[0]["uri"].startswith("deb:fake-doc_1.0_all.deb!/")
    # translated man pages, changelog, copyright, images, the search index: counted skips; symlinks: never read
    assert stats.dropped["not_a_document"] == 5
    assert not any("elsewhere" in e for e in stats.examples["not_a_document"])
    # the unpacked tree is cached and reused
    assert (cache / "debian-tree" / "fake-doc_1.0_all" / ".extracted").is_file()
    assert list(iter_text_documents([str(deb)], cache_dir=cache)) != []


def test_text_stage_with_local_packages(tmp_path: Path) -> None:
    deb = make_deb(tmp_path)
    whl = make_wheel(tmp_path / "fakepkg-1.0-py3-none-any.whl")
    broken = tmp_path / "broken_1.0_all.deb"
    broken.write_bytes(b"!<arch>\nnot really")
    out = tmp_path / "raw" / "text_documents"
    cfg = TextSourceConfig(sources=[str(deb), str(whl), str(broken)])
    meta = ingest_text_documents(cfg, min_chars=50, out_dir=out, cache_dir=tmp_path / "cache")
    rows = read_parquet_rows([out])
    assert meta["n_rows"] == len(rows) > 0
    assert set(meta["by_source"]) == {"deb:fake-doc", "pypi:fakepkg-1.0-py3-none-any"}
    assert meta["est_tokens"] == sum(r["n_chars"] for r in rows) // 4
    assert meta["drops"]["text_sources"]["dropped"]["package_unavailable"] == 1
    dropped = read_parquet_rows([out.parent / "_dropped" / "text_documents.parquet"])
    assert any(d["reason"] == "text_sources:package_unavailable" for d in dropped)
