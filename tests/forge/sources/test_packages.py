"""Registry packages read as archives: wheels, npm tarballs, cached atomic downloads, counted skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.core.stats import StepStats
from forge.sources.general import CodeSourceConfig, TextSourceConfig, iter_code_documents, iter_text_documents
from forge.sources.packages import PackageError, PackageRef, cached_download, npm_license, parse_ref
from tests.forge.sources.package_fixtures import make_npm_tarball, make_wheel


def test_parse_ref_entries() -> None:
    assert parse_ref("stdlib") is None and parse_ref("package:yaml") is None and parse_ref("some/dir") is None
    assert parse_ref("pypi:django==5.1.4") == PackageRef("pypi", "django==5.1.4")
    assert parse_ref("pypi:django==5.1.4").label == "pypi:django"
    assert parse_ref("pypi-sdist:Django>=5").label == "pypi:Django"
    assert parse_ref("npm:@babel/core@7.26.0").label == "npm:@babel/core"
    assert parse_ref("deb:python3.11-doc").label == "deb:python3.11-doc"
    local = parse_ref("x/fakejs-2.0.0.tgz")
    assert local is not None and local.registry == "npm" and local.local == Path("x/fakejs-2.0.0.tgz")
    with pytest.raises(ValueError, match="nothing after pypi"):
        parse_ref("pypi:")


def test_config_rejects_bad_entries() -> None:
    with pytest.raises(ValueError, match="deb packages are not allowed"):
        CodeSourceConfig(roots=["deb:python3.11-doc"])
    with pytest.raises(ValueError, match="unknown languages"):
        CodeSourceConfig(languages=["cobol"])
    assert TextSourceConfig(sources=["deb:manpages", "npm:lodash@4.17.21"]).sources[0] == "deb:manpages"


def test_code_from_wheel_and_npm_tarball(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path / "fakepkg-1.0-py3-none-any.whl")
    tgz = make_npm_tarball(tmp_path / "fakejs-2.0.0.tgz")
    stats = StepStats("code")
    rows = list(iter_code_documents([str(whl), str(tgz)], stats=stats))
    by_title = {r["title"]: r for r in rows}
    # modules and scripts in archive order; minified bundles and non-code files never read
    assert list(by_title) == ["__init__.py", "core.py", "index.js", "types.d.ts"]
    assert by_title["core.py"]["language"] == "python" and by_title["core.py"]["license"] == "MIT"
    assert by_title["core.py"]["uri"] == "pypi:fakepkg-1.0-py3-none-any.whl!/fakepkg/core.py"
    assert by_title["core.py"]["source"] == "pypi:fakepkg-1.0-py3-none-any"
    assert by_title["index.js"]["language"] == "javascript" and by_title["index.js"]["license"] == "ISC"
    assert by_title["types.d.ts"]["language"] == "typescript"
    only_py = list(iter_code_documents([str(tgz)], languages=frozenset({"python"})))
    assert only_py == []
    assert list(iter_code_documents([str(whl), str(tgz)], max_files=3)) == rows[:3]


def test_docs_from_wheel_and_npm_tarball(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path / "fakepkg-1.0-py3-none-any.whl", license_field="")
    tgz = make_npm_tarball(tmp_path / "fakejs-2.0.0.tgz")
    rows = list(iter_text_documents([str(whl), str(tgz)]))
    # docs and the METADATA body (the README); licence files never; classifier when License is empty
    assert [r["title"] for r in rows] == ["guide.rst", "METADATA", "README.md"]
    assert rows[0]["license"] == "MIT License" and rows[2]["license"] == "ISC"
    assert rows[1]["text"].startswith("# fakepkg") and all(r["language"] == "en" for r in rows)


def test_bad_packages_are_counted_skips(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    stats = StepStats("code")
    rows = list(
        iter_code_documents([str(broken), str(tmp_path / "missing-1.0.tgz"), "pypi:x==1"], stats=stats)
    )
    assert rows == [] and stats.dropped == {"package_unavailable": 3}
    details = " ".join(stats.examples["package_unavailable"])
    assert "cannot read broken" in details and "no such archive" in details and "cache directory" in details


def test_cached_download_is_atomic_and_reused(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "npm" / "x"
    calls = []

    def failing(tmp: Path) -> None:
        (tmp / "x-1.0.0.tgz").write_bytes(b"half")
        raise PackageError("network gone")

    with pytest.raises(PackageError, match="network gone"):
        cached_download(dest, failing, "*.tgz")
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing half-written left

    def good(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "x-1.0.0.tgz").write_bytes(b"whole")

    first = cached_download(dest, good, "*.tgz")
    second = cached_download(dest, good, "*.tgz")
    assert first == second == dest / "x-1.0.0.tgz" and first.read_bytes() == b"whole" and len(calls) == 1

    with pytest.raises(PackageError, match="expected one"):
        cached_download(tmp_path / "cache" / "npm" / "y", lambda tmp: None, "*.tgz")


def test_npm_license_forms() -> None:
    assert npm_license({"license": "MIT"}) == "MIT"
    assert npm_license({"license": {"type": "BSD-3-Clause"}}) == "BSD-3-Clause"
    assert npm_license({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}) == "MIT OR Apache-2.0"
    assert npm_license({}) == "unknown"
