"""General code and text for the mixture: this machine's Python, and registry packages read as archives.

Rows match ``contracts.tables.GENERAL_DOCUMENTS`` (one row per file, per package README, or per
module's docstrings). Order is deterministic (sorted paths / names, archive order), so the same
environment and package versions give the same rows, with the same ``doc_id`` wherever they are
installed: a file's URI names what it belongs to, not where it lies (``stdlib:python-3.11.7!/json/
__init__.py``, ``package:PyYAML-6.0.2!/yaml/__init__.py``, ``package:aiohttp-3.10.5!/METADATA``, like the
registry packages' ``pypi:requests-2.32.3-py3-none-any.whl!/requests/__init__.py``); only a local
directory's files keep their absolute paths. Nothing is imported or installed to read it:
code is read as files, docstrings through ``ast``, READMEs through ``importlib.metadata``, packages
as archives.

Roots for code: ``"stdlib"`` (the running Python's standard library, without test suites,
``site-packages`` and IDLE/turtledemo), ``"package:<installed distribution or import name>"``, a
directory, or a registry package: ``"pypi:<requirement>"`` (a wheel), ``"pypi-sdist:<requirement>"``,
``"npm:<spec>"``, or a local ``.whl`` / ``.tar.gz`` / ``.tgz`` archive (``forge.sources.packages``).
Sources for text: ``"package_metadata"``, ``"module_docstrings"``, a directory of ``.txt`` / ``.md``
/ ``.rst`` files, ``"deb:<package>"`` or a local ``.deb`` (Debian documentation: manuals, info,
man pages, HTML; ``forge.sources.debian``), or a PyPI/npm package's documentation files.
Downloads are cached under the ``cache_dir`` the asset passes (``$HEPHAESTUS_HOME/cache``); a
package that cannot be fetched or read is a counted ``package_unavailable`` skip with its reason.

The two stages (:data:`CODE_STAGE`, :data:`TEXT_STAGE`) read them, apply the quality filters and
write ``raw.code_documents`` / ``raw.text_documents``; every dropped file is listed in
``data/raw/_dropped/``. Their configurations are the profile's ``sources.code`` and
``sources.text`` sections.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import platform
import sysconfig
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import field_validator

from contracts import tables as schemas
from forge.core.ids import doc_id
from forge.core.io import sha256_text, write_parquet
from forge.core.report import dropped_rows, stats_meta
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats
from forge.sources.packages import CODE_LANGUAGES, PackageError, PackageRef, parse_ref

#: Directory names under the stdlib that are test suites or tools, not library code.
STDLIB_EXCLUDED_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "turtledemo",
        "__pycache__",
        "ensurepip",
    }  # fmt: skip
)
TEXT_SUFFIXES = (".txt", ".md", ".rst")


def _row(source: str, uri: str, title: str, language: str, text: str, license_: str) -> dict[str, Any]:
    return {
        "doc_id": doc_id(uri),
        "source": source,
        "uri": uri,
        "title": title,
        "language": language,
        "text": text,
        "license": license_,
        "n_chars": len(text),
        "sha256": sha256_text(text),
        "fetched_at": datetime.now(UTC).replace(microsecond=0),
    }


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def _excluded(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts[:-1]
    return any(p in STDLIB_EXCLUDED_DIRS or p.startswith("config-") for p in parts) or path.name.startswith(
        "test_"
    )


def _distribution(name: str) -> md.Distribution | None:
    """A distribution by its name, or by an import name it provides."""
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        pass
    for dist_name in md.packages_distributions().get(name, []):
        try:
            return md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue
    return None


def _dist_license(dist: md.Distribution) -> str:
    from forge.sources.packages import metadata_license

    return metadata_license(dist.metadata)  # type: ignore[arg-type]


def _stdlib_uri(path: Path, base: Path) -> str:
    """A standard-library file's URI: the interpreter's version and the file's path under the stdlib."""
    return f"stdlib:python-{platform.python_version()}!/{path.relative_to(base).as_posix()}"


def _dist_uri(dist: md.Distribution, member: str) -> str:
    """An installed distribution's file's URI: its name, version and the file's path in it."""
    return f"package:{dist.metadata['Name']}-{dist.version}!/{member}"


def _code_root(root: str, stats: StepStats) -> tuple[str, list[tuple[Path, str]], str]:
    """(source name, sorted .py files with their URIs, license) of one code root spec."""
    if root == "stdlib":
        base = _stdlib_dir()
        files = sorted(p for p in base.rglob("*.py") if not _excluded(p, base))
        return "python_stdlib_source", [(p, _stdlib_uri(p, base)) for p in files], "PSF-2.0"
    if root.startswith("package:"):
        name = root.split(":", 1)[1]
        dist = _distribution(name)
        if dist is not None:
            members = sorted(
                (Path(dist.locate_file(f)).resolve(), f.as_posix())
                for f in (dist.files or [])
                if str(f).endswith(".py")
            )
            pairs = [(path, _dist_uri(dist, member)) for path, member in members]
            return f"package:{dist.metadata['Name']}", pairs, _dist_license(dist)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            stats.drop("package_not_found", name)
            return root, [], "unknown"
        base = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        files = sorted(base.rglob("*.py")) if base.is_dir() else [base]
        return root, [(p, f"{root}!/{p.relative_to(base.parent).as_posix()}") for p in files], "unknown"
    base = Path(root)
    if not base.is_dir():
        stats.drop("code_root_not_found", root)
        return root, [], "unknown"
    return "local_code", [(p, str(p)) for p in sorted(base.resolve().rglob("*.py"))], "unknown"


def _package_rows(
    ref: PackageRef,
    kind: str,
    *,
    cache_dir: Path | None,
    languages: frozenset[str],
    max_bytes: int,
    stats: StepStats,
) -> Iterator[dict[str, Any]]:
    """Rows of one registry package (code or documentation files); a package that cannot be
    fetched or read is a counted ``package_unavailable`` skip (rows read before a mid-archive
    error stay)."""
    from forge.sources.packages import archive_license, fetch_archive, iter_package_files

    try:
        archive = fetch_archive(ref, cache_dir)
        if ref.registry == "deb":
            yield from _debian_rows(ref, archive, cache_dir, max_bytes, stats)
            return
        license_ = archive_license(ref, archive)
        prefix = f"{ref.registry.removesuffix('-sdist')}:{archive.name}!/"
        for member, language, text in iter_package_files(
            ref, archive, kind, languages=languages, max_bytes=max_bytes, stats=stats
        ):  # type: ignore[arg-type]
            title = member.rsplit("/", 1)[-1]
            yield _row(ref.label, prefix + member, title, language, text, license_)
    except PackageError as exc:
        stats.drop("package_unavailable", f"{ref.registry}:{ref.spec}: {exc}")


def _debian_rows(
    ref: PackageRef, deb: Path, cache_dir: Path | None, max_bytes: int, stats: StepStats
) -> Iterator[dict[str, Any]]:
    import tempfile

    from forge.sources.debian import copyright_license, extract_deb, iter_tree_documents, package_name

    with tempfile.TemporaryDirectory(prefix="deb-") as scratch:
        tree = extract_deb(deb, Path(cache_dir) / "debian-tree" if cache_dir else Path(scratch))
        name = package_name(tree, deb)
        license_ = copyright_license(tree, name)
        for rel, title, text in iter_tree_documents(tree, max_bytes, stats):
            yield _row(f"deb:{name}", f"deb:{deb.name}!/{rel}", title, "en", text, license_)


def iter_code_documents(
    roots: list[str],
    max_files: int | None = None,
    max_bytes_per_file: int = 200_000,
    stats: StepStats | None = None,
    *,
    cache_dir: Path | None = None,
    languages: frozenset[str] = frozenset(CODE_LANGUAGES.values()),
) -> Iterator[dict[str, Any]]:
    """One row per code file under each root (see module docstring): ``.py`` files of local roots
    (``language="python"``), and the ``languages`` files of registry packages (by suffix,
    ``forge.sources.packages.CODE_LANGUAGES``; minified bundles left out).

    Files over ``max_bytes_per_file`` bytes, undecodable (not UTF-8) files and empty files are
    counted drops. ``max_files`` bounds the rows over all roots.
    """
    stats = stats if stats is not None else StepStats("code_documents")
    n = 0
    for root in roots:
        ref = parse_ref(root)
        if ref is not None:
            for row in _package_rows(
                ref,
                "code",
                cache_dir=cache_dir,
                languages=languages,
                max_bytes=max_bytes_per_file,
                stats=stats,
            ):
                if max_files is not None and n >= max_files:
                    return
                stats.keep()
                n += 1
                yield row
            continue
        source, files, license_ = _code_root(root, stats)
        for path, uri in files:
            if max_files is not None and n >= max_files:
                return
            try:
                size = path.stat().st_size
                if size > max_bytes_per_file:
                    stats.drop("file_too_large", f"{path} ({size} bytes)")
                    continue
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                stats.drop("undecodable", str(path))
                continue
            except OSError as exc:
                stats.drop("unreadable", f"{path}: {exc}")
                continue
            if "\x00" in text:
                stats.drop("binary", str(path))
                continue
            if not text.strip():
                stats.drop("empty", str(path))
                continue
            stats.keep()
            n += 1
            yield _row(source, uri, path.name, "python", text, license_)


def module_docstrings_text(path: Path) -> str:
    """Module docstring plus the docstrings of its public functions and classes, read with ``ast``
    (the module is never imported). Each member's part starts with its name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = [ast.get_docstring(tree) or ""]
    for node in tree.body:
        if isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        ) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(f"{node.name}\n\n{doc}")
    return "\n\n".join(p for p in parts if p.strip())


def _iter_text_source(
    src: str, stats: StepStats, cache_dir: Path | None = None, max_bytes: int = 2_000_000
) -> Iterator[dict[str, Any]]:
    ref = parse_ref(src)
    if ref is not None:
        yield from _package_rows(
            ref, "text", cache_dir=cache_dir, languages=frozenset(), max_bytes=max_bytes, stats=stats
        )
    elif src == "package_metadata":
        dists = {d.metadata["Name"]: d for d in md.distributions() if d.metadata["Name"]}
        for name in sorted(dists, key=str.lower):
            dist = dists[name]
            body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
            if not str(body).strip():
                stats.drop("no_long_description", name)
                continue
            yield _row("package_metadata", _dist_uri(dist, "METADATA"), name, "en", str(body).strip(),
                       _dist_license(dist))  # fmt: skip
    elif src == "module_docstrings":
        base = _stdlib_dir()
        for path in sorted(p for p in base.rglob("*.py") if not _excluded(p, base)):
            try:
                text = module_docstrings_text(path)
            except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
                stats.drop("unparsable_module", f"{path}: {exc}")
                continue
            if not text.strip():
                stats.drop("no_docstrings", str(path))
                continue
            uri = f"{_stdlib_uri(path, base)}#docstrings"
            yield _row("module_docstrings", uri, path.stem, "en", text, "PSF-2.0")
    else:
        base = Path(src)
        if not base.is_dir():
            stats.drop("text_source_not_found", src)
            return
        for path in sorted(p for p in base.resolve().rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file()):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                stats.drop("undecodable", str(path))
                continue
            if not text.strip():
                stats.drop("empty", str(path))
                continue
            yield _row("local_text", str(path), path.name, "en", text, "unknown")


def iter_text_documents(
    sources: list[str],
    max_docs: int | None = None,
    stats: StepStats | None = None,
    *,
    cache_dir: Path | None = None,
    max_bytes_per_file: int = 2_000_000,
) -> Iterator[dict[str, Any]]:
    """Natural-language documents from each source (see module docstring), ``language="en"``
    (checked by the language filter, not assumed)."""
    stats = stats if stats is not None else StepStats("text_documents")
    n = 0
    for src in sources:
        for row in _iter_text_source(src, stats, cache_dir, max_bytes_per_file):
            if max_docs is not None and n >= max_docs:
                return
            stats.keep()
            n += 1
            yield row


def _check_entries(entries: list[str], allowed: tuple[str, ...]) -> list[str]:
    """Every registry entry well formed and of an allowed registry (errors name the entry)."""
    for entry in entries:
        ref = parse_ref(entry)  # raises on "pypi:" with nothing after it
        if ref is not None and ref.registry not in allowed:
            raise ValueError(f"{entry!r}: {ref.registry} packages are not allowed here (only {allowed})")
    return entries


class CodeSourceConfig(StageConfig):
    """``sources.code``: which code roots, and how much of them."""

    #: ``stdlib``, ``package:<installed name>``, a directory (relative to the repository root),
    #: ``pypi:<requirement>``, ``pypi-sdist:<requirement>``, ``npm:<spec>`` or a local archive
    roots: list[str] = ["stdlib"]
    #: at most this many files over all roots (None: all)
    max_files: int | None = None
    #: larger files are counted drops, in bytes
    max_bytes_per_file: int = 100_000
    #: languages read from registry packages (local roots are Python only)
    languages: list[str] = sorted(set(CODE_LANGUAGES.values()))

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        return _check_entries(v, ("pypi", "pypi-sdist", "npm"))

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(CODE_LANGUAGES.values()))
        if unknown:
            raise ValueError(f"unknown languages {unknown}; known: {sorted(set(CODE_LANGUAGES.values()))}")
        return v


class TextSourceConfig(StageConfig):
    """``sources.text``: which text sources, and how many documents."""

    #: ``package_metadata``, ``module_docstrings``, a directory (relative to the repository root),
    #: ``deb:<package>``, ``pypi:<requirement>``, ``pypi-sdist:<requirement>``, ``npm:<spec>``, or
    #: a local archive (``.deb``, ``.whl``, ``.tar.gz``, ``.tgz``)
    sources: list[str] = ["module_docstrings"]
    #: at most this many documents over all sources (None: all)
    max_docs: int | None = None
    #: larger files (before text extraction, gzip-compressed size for Debian's) are counted drops
    max_bytes_per_file: int = 2_000_000

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        return _check_entries(v, ("pypi", "pypi-sdist", "npm", "deb"))


def general_filters(kind: str, min_chars: int) -> list:
    """Quality filters for general documents (``forge.text.filters.filter_config``'s code or text
    preset), then exact deduplication."""
    from forge.text.filters import ExactDedup, filter_config

    return [*filter_config("code" if kind == "code" else "text", min_chars).filters(), ExactDedup()]


def _write_documents(
    kind: str, docs: Iterator[dict[str, Any]], src_stats: StepStats, min_chars: int, out_dir: Path
) -> dict[str, Any]:
    """Filter ``docs`` and write ``out_dir/part-0.parquet``; every drop (source or filter) goes to
    ``<out_dir>/../_dropped/<kind>_documents.parquet``."""
    from forge.text.filters import apply_filters

    filter_stats = StepStats(f"{kind}_filters")
    dropped: list[dict[str, Any]] = []

    def on_drop(row: dict[str, Any], reason: str) -> None:
        dropped.append(
            {
                "asset": f"{kind}_documents",
                "reason": reason,
                "detail": row.get("title"),
                "source_uri": row.get("uri"),
            }
        )

    by_source: dict[str, list[int]] = {}

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            tally = by_source.setdefault(row["source"], [0, 0])
            tally[0] += 1
            tally[1] += row["n_chars"]
            yield row

    kept = apply_filters(docs, general_filters(kind, min_chars), filter_stats, on_drop=on_drop)
    n = write_parquet(out_dir / "part-0.parquet", counted(kept), schemas.GENERAL_DOCUMENTS)
    source_drops = list(dropped_rows(f"{kind}_documents", [src_stats]))
    write_parquet(
        out_dir.parent / "_dropped" / f"{kind}_documents.parquet",
        dropped + source_drops,
        schemas.DROPPED_ROWS,
    )
    return {
        "n_rows": n,
        "n_chars": sum(t[1] for t in by_source.values()),
        # tokens estimated as characters / 4 (the corpus stage counts real tokens)
        "est_tokens": sum(t[1] for t in by_source.values()) // 4,
        "by_source": {s: {"n_docs": t[0], "n_chars": t[1]} for s, t in sorted(by_source.items())},
        "drops": stats_meta(src_stats, filter_stats),
    }


def ingest_code_documents(
    cfg: CodeSourceConfig, *, min_chars: int, out_dir: Path, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Real code -> ``out_dir/part-0.parquet`` (raw.code_documents), after the quality filters
    (documents under ``min_chars`` characters dropped); packages are downloaded into ``cache_dir``."""
    stats = StepStats("code_sources")
    docs = iter_code_documents(
        cfg.roots,
        cfg.max_files,
        cfg.max_bytes_per_file,
        stats,
        cache_dir=cache_dir,
        languages=frozenset(cfg.languages),
    )
    return _write_documents("code", docs, stats, min_chars, out_dir)


def ingest_text_documents(
    cfg: TextSourceConfig, *, min_chars: int, out_dir: Path, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Real text -> ``out_dir/part-0.parquet`` (raw.text_documents), after the quality filters
    (documents under ``min_chars`` characters dropped); packages are downloaded into ``cache_dir``."""
    stats = StepStats("text_sources")
    docs = iter_text_documents(
        cfg.sources, cfg.max_docs, stats, cache_dir=cache_dir, max_bytes_per_file=cfg.max_bytes_per_file
    )
    return _write_documents("text", docs, stats, min_chars, out_dir)


CODE_STAGE = Stage("code_documents", CodeSourceConfig, ingest_code_documents)
TEXT_STAGE = Stage("text_documents", TextSourceConfig, ingest_text_documents)
