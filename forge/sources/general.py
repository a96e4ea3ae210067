"""General code and text for the mixture, from what is on this machine (no network).

Rows match ``contracts.tables.GENERAL_DOCUMENTS`` (one row per file, per package README, or per
module's docstrings). Order is deterministic (sorted paths / names), so the same environment
gives the same rows. Nothing is imported to read it: code is read as files, docstrings through
``ast``, READMEs through ``importlib.metadata``.

Roots for code: ``"stdlib"`` (the running Python's standard library, without test suites,
``site-packages`` and IDLE/turtledemo), ``"package:<distribution or import name>"``, or a
directory. Sources for text: ``"package_metadata"``, ``"module_docstrings"``, or a directory of
``.txt`` / ``.md`` / ``.rst`` files.

The two stages (:data:`CODE_STAGE`, :data:`TEXT_STAGE`) read them, apply the quality filters and
write ``raw.code_documents`` / ``raw.text_documents``; every dropped file is listed in
``data/raw/_dropped/``. Their configurations are the profile's ``sources.code`` and
``sources.text`` sections.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import sysconfig
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import tables as schemas
from forge.core.ids import doc_id
from forge.core.io import sha256_text, write_parquet
from forge.core.report import dropped_rows, stats_meta
from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats

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
    meta = dist.metadata
    lic = meta.get("License-Expression") or meta.get("License") or ""
    if not lic.strip() or len(lic) > 100:  # some put the whole licence text in the field
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if "License" in c]
        lic = classifiers[0] if classifiers else ""
    return lic.strip()[:100] or "unknown"


def _code_root(root: str, stats: StepStats) -> tuple[str, list[Path], str]:
    """(source name, sorted .py files, license) of one code root spec."""
    if root == "stdlib":
        base = _stdlib_dir()
        files = sorted(p for p in base.rglob("*.py") if not _excluded(p, base))
        return "python_stdlib_source", files, "PSF-2.0"
    if root.startswith("package:"):
        name = root.split(":", 1)[1]
        dist = _distribution(name)
        if dist is not None:
            files = sorted(
                Path(dist.locate_file(f)).resolve() for f in (dist.files or []) if str(f).endswith(".py")
            )
            return f"package:{dist.metadata['Name']}", files, _dist_license(dist)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            stats.drop("package_not_found", name)
            return root, [], "unknown"
        base = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        files = sorted(base.rglob("*.py")) if base.is_dir() else [base]
        return root, files, "unknown"
    base = Path(root)
    if not base.is_dir():
        stats.drop("code_root_not_found", root)
        return root, [], "unknown"
    return "local_code", sorted(base.resolve().rglob("*.py")), "unknown"


def iter_code_documents(
    roots: list[str],
    max_files: int | None = None,
    max_bytes_per_file: int = 200_000,
    stats: StepStats | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per ``.py`` file under each root (see module docstring), ``language="python"``.

    Files over ``max_bytes_per_file`` bytes, undecodable (not UTF-8) files and empty files are
    counted drops. ``max_files`` bounds the rows over all roots.
    """
    stats = stats if stats is not None else StepStats("code_documents")
    n = 0
    for root in roots:
        source, files, license_ = _code_root(root, stats)
        for path in files:
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
            yield _row(source, str(path), path.name, "python", text, license_)


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


def _iter_text_source(src: str, stats: StepStats) -> Iterator[dict[str, Any]]:
    if src == "package_metadata":
        dists = {d.metadata["Name"]: d for d in md.distributions() if d.metadata["Name"]}
        for name in sorted(dists, key=str.lower):
            dist = dists[name]
            body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
            if not str(body).strip():
                stats.drop("no_long_description", name)
                continue
            uri = f"{Path(str(dist.locate_file(''))).resolve()}#{name}/METADATA"
            yield _row("package_metadata", uri, name, "en", str(body).strip(), _dist_license(dist))
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
            yield _row("module_docstrings", f"{path}#docstrings", path.stem, "en", text, "PSF-2.0")
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
    sources: list[str], max_docs: int | None = None, stats: StepStats | None = None
) -> Iterator[dict[str, Any]]:
    """Natural-language documents from each source (see module docstring), ``language="en"``."""
    stats = stats if stats is not None else StepStats("text_documents")
    n = 0
    for src in sources:
        for row in _iter_text_source(src, stats):
            if max_docs is not None and n >= max_docs:
                return
            stats.keep()
            n += 1
            yield row


class CodeSourceConfig(StageConfig):
    """``sources.code``: which code roots, and how much of them."""

    #: ``stdlib``, ``package:<name>`` or a directory (relative to the repository root)
    roots: list[str] = ["stdlib"]
    #: at most this many files over all roots (None: all)
    max_files: int | None = None
    #: larger files are counted drops, in bytes
    max_bytes_per_file: int = 100_000


class TextSourceConfig(StageConfig):
    """``sources.text``: which text sources, and how many documents."""

    #: ``package_metadata``, ``module_docstrings`` or a directory (relative to the repository root)
    sources: list[str] = ["module_docstrings"]
    #: at most this many documents over all sources (None: all)
    max_docs: int | None = None


def general_filters(kind: str, min_chars: int) -> list:
    """Quality filters for general documents. Code gets a looser symbol budget (operators and
    brackets are not noise there) and the same bounds on minified lines and repetition."""
    from forge.text.filters import (
        ExactDedup,
        MaxChars,
        MaxLineLength,
        MaxNonAlnumFraction,
        MaxRepeatedLines,
        MinChars,
    )

    return [
        MinChars(min_chars),
        MaxChars(500_000),
        MaxNonAlnumFraction(0.6 if kind == "code" else 0.5),
        MaxLineLength(1000),
        MaxRepeatedLines(0.5 if kind == "code" else 0.3),
        ExactDedup(),
    ]


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

    kept = apply_filters(docs, general_filters(kind, min_chars), filter_stats, on_drop=on_drop)
    n = write_parquet(out_dir / "part-0.parquet", kept, schemas.GENERAL_DOCUMENTS)
    source_drops = list(dropped_rows(f"{kind}_documents", [src_stats]))
    write_parquet(
        out_dir.parent / "_dropped" / f"{kind}_documents.parquet",
        dropped + source_drops,
        schemas.DROPPED_ROWS,
    )
    return {"n_rows": n, "drops": stats_meta(src_stats, filter_stats)}


def ingest_code_documents(cfg: CodeSourceConfig, *, min_chars: int, out_dir: Path) -> dict[str, Any]:
    """Real local code -> ``out_dir/part-0.parquet`` (raw.code_documents), after the quality filters
    (documents under ``min_chars`` characters dropped)."""
    stats = StepStats("code_sources")
    docs = iter_code_documents(cfg.roots, cfg.max_files, cfg.max_bytes_per_file, stats)
    return _write_documents("code", docs, stats, min_chars, out_dir)


def ingest_text_documents(cfg: TextSourceConfig, *, min_chars: int, out_dir: Path) -> dict[str, Any]:
    """Real local text -> ``out_dir/part-0.parquet`` (raw.text_documents), after the quality filters
    (documents under ``min_chars`` characters dropped)."""
    stats = StepStats("text_sources")
    docs = iter_text_documents(cfg.sources, cfg.max_docs, stats)
    return _write_documents("text", docs, stats, min_chars, out_dir)


CODE_STAGE = Stage("code_documents", CodeSourceConfig, ingest_code_documents)
TEXT_STAGE = Stage("text_documents", TextSourceConfig, ingest_text_documents)
