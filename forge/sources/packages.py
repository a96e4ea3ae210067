"""General code and text from registry packages, read as archives: never installed, never imported.

Entries (in ``sources.code.roots`` / ``sources.text.sources``) name a package of a registry:

* ``pypi:<requirement>`` — a wheel, fetched with ``pip download --no-deps --only-binary :all:``;
* ``pypi-sdist:<requirement>`` — the source distribution (``--no-binary :all:``; slower: pip
  prepares its metadata), for the ``docs/`` folders wheels leave out;
* ``npm:<spec>`` — the tarball ``npm pack`` fetches;
* ``deb:<package>`` — a Debian package (``apt-get download``, see ``forge.sources.debian``);

or a local archive file (``.whl``, ``.zip``, ``.tar.gz``, ``.tgz``, ``.deb``), which tests use.

Downloads land in ``<cache>/<registry>/<entry>/``: each is fetched into a temporary directory
beside it and renamed into place, so a killed download never leaves a half archive under the final
name, and a later run reuses it without asking the registry (an unpinned spec is frozen at its
first download). A package that fails to download or read raises :class:`PackageError`; the
stages count it as a skip with its reason, never a crash.

Licence per document: the package's own metadata (a wheel's ``METADATA`` / an sdist's
``PKG-INFO``: ``License-Expression``, a short ``License``, else the first licence classifier;
``package.json``'s ``license``), or Debian's ``copyright`` file.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Literal

from forge.core.stats import StepStats

Registry = Literal["pypi", "pypi-sdist", "npm", "deb"]
REGISTRIES: tuple[str, ...] = ("pypi", "pypi-sdist", "npm", "deb")
ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".deb")

#: file suffix -> language of a code document read from a package
CODE_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescript",
}
#: suffixes of documentation files read from a package as text documents
DOC_SUFFIXES = (".md", ".rst", ".txt", ".markdown")
#: bundled/minified builds: generated, not written code
_GENERATED = re.compile(r"(\.min\.[cm]?js$|\.bundle\.js$|[-.]umd(\.development|\.production)?\.js$)")
#: licence texts and changelogs: the same boilerplate in every package, not documentation
_NOT_DOCS = re.compile(r"(^|/)(licen[cs]e|copying|notice|authors|changelog|changes|history)[^/]*$", re.I)
_DOWNLOAD_TIMEOUT_S = 1800


class PackageError(RuntimeError):
    """A package that could not be fetched or read; the message is the counted skip's detail."""


@dataclass(frozen=True)
class PackageRef:
    """One configured package: its registry and spec, or a local archive (``local`` set)."""

    registry: Registry
    spec: str
    local: Path | None = None

    @property
    def label(self) -> str:
        """``pypi:django`` — the ``source`` column of its documents (local files: their stem)."""
        if self.local is not None:
            return f"{self.registry}:{archive_stem(self.local)}"
        name = (
            re.split(r"[=<>!~;\[ ]", self.spec, maxsplit=1)[0]
            if self.registry.startswith("pypi")
            else self.spec
        )
        if self.registry == "npm":
            name = re.sub(r"(?<=.)@.*$", "", self.spec)  # name@1.2.3 (a scope's @ is first)
        return f"{'pypi' if self.registry == 'pypi-sdist' else self.registry}:{name}"


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _local_registry(path: Path) -> Registry:
    name = path.name
    if name.endswith(".deb"):
        return "deb"
    if name.endswith(".tgz"):  # npm pack names its tarballs <name>-<version>.tgz; sdists are .tar.gz
        return "npm"
    return "pypi"


def parse_ref(entry: str) -> PackageRef | None:
    """The package an entry names, or None when it is no package entry (``stdlib``, a directory...).

    Raises ValueError on a registry prefix with nothing after it.
    """
    prefix, sep, rest = entry.partition(":")
    if sep and prefix in REGISTRIES:
        if not rest.strip():
            raise ValueError(f"{entry!r}: nothing after {prefix}:")
        return PackageRef(prefix, rest.strip())  # type: ignore[arg-type]
    if entry.endswith(ARCHIVE_SUFFIXES):
        path = Path(entry)
        return PackageRef(_local_registry(path), entry, local=path)
    return None


def _safe(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", spec).strip("_") or "package"


def cached_download(dest: Path, fetch: Callable[[Path], None], pattern: str) -> Path:
    """The one file matching ``pattern`` in ``dest``; when absent, ``fetch(tmp)`` fills a fresh
    temporary directory beside ``dest`` that is then renamed to ``dest`` (atomic: a killed fetch
    leaves no ``dest``). Leftover temporary directories an hour old are removed."""
    found = sorted(dest.glob(pattern)) if dest.is_dir() else []
    if len(found) == 1:
        return found[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*"):
        try:
            if stale.stat().st_mtime < time.time() - 3600:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        fetch(tmp)
        got = sorted(tmp.glob(pattern))
        if len(got) != 1:
            raise PackageError(f"expected one {pattern} from the download, got {len(got)}")
        if dest.exists():  # a stale or broken copy (or a concurrent run's): replace it
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not any(dest.glob(pattern)):
                raise
        return sorted(dest.glob(pattern))[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_DOWNLOAD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackageError(f"`{' '.join(cmd[:4])} ...` failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = [ln for ln in tail if not ln.startswith("WARNING")] or tail
        raise PackageError(f"`{' '.join(cmd[:4])} ...` exit {proc.returncode}: {' | '.join(tail[-2:])[:400]}")


def fetch_archive(ref: PackageRef, cache_dir: Path | None) -> Path:
    """The archive of ``ref``: the local file, or the cached download (fetched when missing)."""
    if ref.local is not None:
        if not ref.local.is_file():
            raise PackageError(f"no such archive: {ref.local}")
        return ref.local
    if cache_dir is None:
        raise PackageError(f"{ref.registry}:{ref.spec} needs a download cache directory")
    dest = Path(cache_dir) / ref.registry / _safe(ref.spec)
    if ref.registry in ("pypi", "pypi-sdist"):
        binary = ["--only-binary", ":all:"] if ref.registry == "pypi" else ["--no-binary", ":all:"]
        pattern = "*.whl" if ref.registry == "pypi" else "*.tar.gz"
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *binary, ref.spec, "-d"]
        return cached_download(dest, lambda tmp: _run([*cmd, str(tmp)]), pattern)
    if ref.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise PackageError("npm is not installed (needed for npm: entries)")
        return cached_download(dest, lambda tmp: _run([npm, "pack", "-q", ref.spec], cwd=tmp), "*.tgz")
    if ref.registry == "deb":
        apt = shutil.which("apt-get")
        if apt is None:
            raise PackageError("apt-get is not available (needed for deb: entries)")
        return cached_download(dest, lambda tmp: _run([apt, "download", "-qq", ref.spec], cwd=tmp), "*.deb")
    raise PackageError(f"unknown registry {ref.registry!r}")


# --- reading archives --------------------------------------------------------------------------


def iter_members(
    archive: Path, select: Callable[[str], bool], max_bytes: int, stats: StepStats
) -> Iterator[tuple[str, bytes]]:
    """``(member name, bytes)`` of the regular files of a wheel/zip or tarball that ``select``
    accepts, in archive order; members over ``max_bytes`` are counted ``file_too_large`` drops."""
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if info.is_dir() or not select(info.filename):
                        continue
                    if info.file_size > max_bytes:
                        stats.drop(
                            "file_too_large", f"{archive.name}!{info.filename} ({info.file_size} bytes)"
                        )
                        continue
                    yield info.filename, zf.read(info)
        else:
            with tarfile.open(archive, mode="r:*") as tf:
                for member in tf:
                    if not member.isreg() or not select(member.name):
                        continue
                    if member.size > max_bytes:
                        stats.drop("file_too_large", f"{archive.name}!{member.name} ({member.size} bytes)")
                        continue
                    handle = tf.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise PackageError(f"cannot read {archive.name}: {exc}") from None


def _read_one(archive: Path, match: Callable[[str], bool]) -> bytes | None:
    for _name, data in iter_members(archive, match, 5_000_000, StepStats("metadata")):
        return data
    return None


def metadata_license(meta: Message) -> str:
    """Licence of a Python distribution from its core metadata (``License-Expression``, a short
    ``License``, else the first licence classifier), ``unknown`` when none."""
    lic = meta.get("License-Expression") or meta.get("License") or ""
    if not str(lic).strip() or len(str(lic)) > 100:  # some put the whole licence text in the field
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if "License" in c]
        lic = classifiers[0] if classifiers else ""
    return str(lic).strip()[:100] or "unknown"


def python_metadata(archive: Path) -> Message | None:
    """A wheel's ``*.dist-info/METADATA`` or an sdist's top-level ``PKG-INFO``, parsed."""
    if archive.name.endswith((".whl", ".zip")):
        data = _read_one(archive, lambda n: n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
    else:
        data = _read_one(archive, lambda n: n.count("/") == 1 and n.endswith("/PKG-INFO"))
    if data is None:
        return None
    return email.parser.Parser().parsestr(data.decode("utf-8", errors="replace"))


def npm_license(manifest: dict) -> str:
    """``package.json``'s ``license`` (a string, or the old ``{type}`` / ``licenses`` forms)."""
    lic = manifest.get("license") or manifest.get("licenses") or ""
    if isinstance(lic, list):
        lic = " OR ".join(str(x.get("type", x) if isinstance(x, dict) else x) for x in lic)
    elif isinstance(lic, dict):
        lic = lic.get("type", "")
    return str(lic).strip()[:100] or "unknown"


def npm_manifest(archive: Path) -> dict:
    data = _read_one(archive, lambda n: n.count("/") == 1 and n.endswith("/package.json"))
    if data is None:
        return {}
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def archive_license(ref: PackageRef, archive: Path) -> str:
    """The licence every document of a PyPI or npm archive carries."""
    if ref.registry == "npm":
        return npm_license(npm_manifest(archive))
    meta = python_metadata(archive)
    return metadata_license(meta) if meta is not None else "unknown"


def _is_code(name: str, languages: frozenset[str]) -> str | None:
    suffix = os.path.splitext(name)[1]
    lang = CODE_LANGUAGES.get(suffix)
    if lang is None or lang not in languages or _GENERATED.search(name) or "/node_modules/" in name:
        return None
    return lang


def _is_doc(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if _NOT_DOCS.search(name) or ".dist-info/" in name or ".egg-info/" in name:
        return False
    return name.lower().endswith(DOC_SUFFIXES) or base.upper() in ("README", "FAQ")


def iter_package_files(
    ref: PackageRef,
    archive: Path,
    kind: Literal["code", "text"],
    *,
    languages: frozenset[str],
    max_bytes: int,
    stats: StepStats,
) -> Iterator[tuple[str, str, str]]:
    """``(member, language, text)`` of each code file (``kind="code"``) or documentation file
    (``kind="text"``; a wheel's ``METADATA`` body, its README, counts as one) of a PyPI or npm
    archive. Undecodable, binary and empty files are counted drops."""
    select: Callable[[str], bool]
    if kind == "code":
        select = lambda n: _is_code(n, languages) is not None  # noqa: E731
    else:
        select = _is_doc
    for name, data in iter_members(archive, select, max_bytes, stats):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            stats.drop("undecodable", f"{archive.name}!{name}")
            continue
        if "\x00" in text:
            stats.drop("binary", f"{archive.name}!{name}")
            continue
        if not text.strip():
            stats.drop("empty", f"{archive.name}!{name}")
            continue
        yield name, (_is_code(name, languages) or "") if kind == "code" else "en", text
    if kind == "text" and ref.registry != "npm":
        meta = python_metadata(archive)
        body = str(meta.get_payload() or meta.get("Description") or "") if meta is not None else ""
        if body.strip():
            yield "METADATA", "en", body.strip()
