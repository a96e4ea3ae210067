"""Debian documentation packages as general text: manuals, info files, man pages, HTML docs.

A package is fetched with ``apt-get download`` (``forge.sources.packages.fetch_archive``, cached) and
unpacked with ``dpkg-deb -x`` — no root, nothing installed, like ``make pydocs`` — into
``<cache>/debian-tree/<deb name>/`` (a temporary directory renamed into place, so a killed run
leaves no half tree under that name; a later run reuses it).

Grain: one document per file. What is read, by path (a ``.gz`` suffix is decompressed first):

* ``usr/share/man/man*/`` — roff sources, turned into text by :func:`roff_to_text` (``man`` and
  ``groff`` are not run: the common ``man``/``mdoc`` macros and escapes are stripped; tables
  (``tbl``) and equations keep their cell text). Translated man pages (``man/<lang>/``) are skipped.
* ``usr/share/info/`` — info files are text; :func:`info_to_text` removes node headers, the tag
  table and index markers.
* ``.html`` / ``.htm`` — main text through the crawler's extractor (``forge.crawler.extract``);
  Sphinx's search, index and ``_sources``/``_static`` copies are skipped.
* ``.txt``, ``.md``, ``.rst``, ``.pod``, ``README`` and ``FAQ`` — as they are (``.rst`` only when
  the package has no HTML: Sphinx packages ship the sources of the pages they hold).

Changelogs and ``copyright`` are not documents; every other file (images, scripts, styles) is a
counted ``not_a_document`` skip. Symbolic links are never followed (doc packages link into other
packages). The licence of every document is read from the package's
``usr/share/doc/<package>/copyright`` (:func:`copyright_license`).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from forge.core.stats import StepStats
from forge.sources.packages import PackageError, archive_stem

_TEXT_SUFFIXES = (".txt", ".md", ".rst", ".pod", ".text")
_TEXT_NAMES = ("README", "FAQ")
_HTML_SKIP = re.compile(
    r"(/_sources/|/_static/|/_images/|/_modules/|(^|/)(genindex|search|py-modindex)[^/]*\.html?$)"
)
_NOT_DOCS = re.compile(r"(^|/)(changelog|copyright|NEWS\.Debian)[^/]*$", re.I)
_CLASS_ATTR = re.compile(r"""\sclass=("[^"]*"|'[^']*')""")


def extract_deb(deb: Path, trees_dir: Path) -> Path:
    """The unpacked tree of ``deb`` under ``trees_dir`` (``dpkg-deb -x``; reused when present)."""
    dest = trees_dir / archive_stem(deb)
    marker = dest / ".extracted"
    if marker.is_file():
        return dest
    dpkg = shutil.which("dpkg-deb")
    if dpkg is None:
        raise PackageError("dpkg-deb is not available (needed to unpack .deb packages)")
    trees_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=trees_dir))
    try:
        proc = subprocess.run([dpkg, "-x", str(deb), str(tmp)], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise PackageError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()[-300:]}")
        (tmp / ".extracted").write_text(deb.name)
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: licences named in free-form copyright files, most specific first
_FREE_FORM_LICENSES = (
    (r"Python Software Foundation|\bPSF\b", "PSF-2.0"),
    (r"Apache License,? Version 2\.0", "Apache-2.0"),
    (r"GNU Free Documentation License", "GFDL"),
    (r"GNU Lesser General Public License|\bLGPL", "LGPL"),
    (r"GNU General Public License,? version 3|GPL-?3", "GPL-3+"),
    (r"GNU General Public License|\bGPL", "GPL-2+"),
    (r"Creative Commons Attribution", "CC-BY"),
    (r"Permission is hereby granted, free of charge", "MIT"),
    (r"Redistribution and use in source and binary forms", "BSD"),
    (r"public domain", "public-domain"),
)


def copyright_license(tree: Path, package: str) -> str:
    """The licence of a package's files from ``usr/share/doc/<package>/copyright``: in a
    machine-readable file (DEP-5), the ``License:`` of the ``Files: *`` stanza, else its first;
    in a free-form file, the first well-known licence it names (:data:`_FREE_FORM_LICENSES`);
    ``unknown`` when neither (or no file)."""
    path = tree / "usr" / "share" / "doc" / package / "copyright"
    if path.is_symlink() or not path.is_file():
        return "unknown"
    text = path.read_text(encoding="utf-8", errors="replace")
    if re.match(r"Format:", text):
        first = None
        for stanza in re.split(r"\n\s*\n", text):
            lic = re.search(r"^License:[ \t]*(\S[^\n]*)", stanza, re.M)
            if lic is None:
                continue
            first = first or lic.group(1).strip()
            if re.search(r"^Files:[ \t]*\*[ \t]*$", stanza, re.M):
                return lic.group(1).strip()[:100]
        if first:
            return first[:100]
    for pattern, name in _FREE_FORM_LICENSES:
        if re.search(pattern, text, re.I if name == "public-domain" else 0):
            return name
    return "unknown"


# --- roff (man pages) ----------------------------------------------------------------------------

_ROFF_ESCAPES = {
    r"\(em": "—", r"\(en": "–", r"\(aq": "'", r"\(dq": '"', r"\(lq": "“", r"\(rq": "”", r"\(oq": "‘",
    r"\(cq": "’", r"\(bu": "•", r"\(co": "©", r"\(rg": "®", r"\(tm": "™", r"\(mu": "×", r"\(>=": "≥",
    r"\(<=": "≤", r"\(ti": "~", r"\(ha": "^", r"\(hy": "-", r"\(ga": "`", r"\(bv": "|", r"\(rs": "\\",
}  # fmt: skip
_ESCAPE = re.compile(
    r"\\\((..)|\\\[[^\]]*\]|\\f(\(..|\[[^\]]*\]|.)|\\s[-+]?\d|\\[*n](\(..|\[[^\]]*\]|.)|\\[&|^:%c)]|\\[ ~0]|\\-|\\e|\\.",
)
#: macros whose arguments are running text (man and mdoc), with how arguments are joined
_TEXT_MACROS = {"B", "I", "SM", "SB", "SH", "SS", "Nd", "Sh", "Ss", "Dl", "D1", "It", "Tn", "Em", "Sy", "Ql",
                "Dq", "Sq", "Pq", "Qq", "Li", "Nm", "Fl", "Ar", "Cm", "Op", "Xr", "Pa", "Va", "Fn", "Fa",
                "Ev", "Er", "Ic", "Dv", "Ft", "Fd", "Lk", "Mt", "St", "Ux", "Bx", "At", "No", "Ns", "Ad",
                "Ms", "Ta", "UR", "MT"}  # fmt: skip
_ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}
_BREAK_MACROS = {"PP", "LP", "P", "sp", "br", "Pp", "Lp", "Bl", "El", "RS", "RE"}


def _roff_escapes(text: str) -> str:
    def sub(m: re.Match) -> str:
        whole = m.group(0)
        if m.group(1):
            return _ROFF_ESCAPES.get(whole, "")
        if whole in (r"\-", r"\e"):
            return "-" if whole == r"\-" else "\\"
        if whole in (r"\ ", r"\~", r"\0"):
            return " "
        return ""

    return _ESCAPE.sub(sub, text)


def _roff_args(rest: str) -> list[str]:
    return [a[1:-1] if len(a) > 1 and a[0] == a[-1] == '"' else a for a in re.findall(r'"[^"]*"|\S+', rest)]


def roff_to_text(source: str) -> str:
    """Plain text of a man page's roff source: macros dropped or turned into their text (section
    headings on lines of their own), font and character escapes resolved, comments removed. Text
    lines are filled into paragraphs as ``man`` would (``.nf``/``.EX`` blocks keep their lines)."""
    out: list[str] = []
    para: list[str] = []
    nofill = False
    tag_next = False  # after .TP the next line is the item's tag, on a line of its own

    def flush() -> None:
        if para:
            out.append(" ".join(p.strip() for p in para if p.strip()))
            para.clear()

    def add(text: str) -> None:
        nonlocal tag_next
        if tag_next:
            flush()
            out.append(text)
            tag_next = False
        elif nofill:
            flush()
            out.append(text)
        else:
            para.append(text)

    for raw in source.splitlines():
        line = raw.rstrip()
        if line.startswith(("'", ".")) and len(line) > 1:
            body = line[1:].lstrip()
            if body.startswith('\\"') or not body:
                continue
            name, _, rest = body.partition(" ")
            if name in ("SH", "SS", "Sh", "Ss"):
                flush()
                out.extend(["", _roff_escapes(" ".join(_roff_args(rest))).strip(), ""])
            elif name in ("nf", "EX", "Bd"):
                flush()
                nofill = True
            elif name in ("fi", "EE", "Ed"):
                flush()
                nofill = False
            elif name in _ALTERNATING:
                add(_roff_escapes("".join(_roff_args(rest))))
            elif name in ("TP", "IP", "It", "TQ", "HP"):
                flush()
                if rest.strip():
                    add(_roff_escapes(" ".join(_roff_args(rest))))
                if name != "It":
                    flush()
                tag_next = name in ("TP", "TQ")
            elif name in _TEXT_MACROS:
                add(_roff_escapes(" ".join(_roff_args(rest))))
            elif name in _BREAK_MACROS:
                flush()
                out.append("")
            continue  # every other request (.TH, .de, .nr, .ds, .if, .ft, .in, ...) is formatting
        if line.startswith('\\"'):
            continue
        if not line.strip():
            flush()
            out.append("")
            continue
        add(_roff_escapes(line))
    flush()
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- info ---------------------------------------------------------------------------------------


def info_to_text(source: str) -> str:
    """Text of an info file: node header lines (``File: ..., Node: ...``), the tag table, the
    indirect table and index markers (``\\0\\b[index\\0\\b]``) removed."""
    parts = []
    for node in source.split("\x1f"):
        node = node.lstrip("\n")
        if node.startswith(("Tag Table:", "Indirect:", "End Tag Table", "Local Variables")):
            continue
        lines = node.splitlines()
        if lines and lines[0].startswith("File:"):
            lines = lines[1:]
        parts.append("\n".join(lines))
    text = "\n".join(parts)
    text = re.sub(r"\x00\x08\[[^\x00]*\x00\x08\]", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- walking a tree ------------------------------------------------------------------------------


def _kind(rel: str) -> str | None:
    """``man`` / ``info`` / ``html`` / ``text`` for a document's path inside the tree, else None."""
    name = rel[:-3] if rel.endswith(".gz") else rel
    base = name.rsplit("/", 1)[-1]
    if _NOT_DOCS.search(name):
        return None
    if name.startswith("usr/share/man/"):
        return "man" if re.match(r"usr/share/man/man[^/]+/", name) else None
    if name.startswith("usr/share/info/"):
        return "info" if re.search(r"\.info(-\d+)?$", name) or "." not in base else None
    lower = name.lower()
    if lower.endswith((".html", ".htm")):
        return None if _HTML_SKIP.search(name) else "html"
    if lower.endswith(_TEXT_SUFFIXES) or base.upper() in _TEXT_NAMES:
        return None if "/_sources/" in name else "text"
    return None


def _decode(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _title(rel: str, fallback: str = "") -> str:
    return fallback or rel.rsplit("/", 1)[-1].removesuffix(".gz")


def iter_tree_documents(tree: Path, max_bytes: int, stats: StepStats) -> Iterator[tuple[str, str, str]]:
    """``(path inside the package, title, text)`` of every document under an unpacked tree, in
    sorted path order; see the module docstring for what counts. Unreadable, undecodable, empty
    and oversized files are counted drops."""
    from forge.crawler.extract import extract_page

    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):  # never follows symlinked directories
        dirnames.sort()
        for fname in filenames:
            full = os.path.join(dirpath, fname)
            if os.path.islink(full) or fname == ".extracted":
                continue
            paths.append(os.path.relpath(full, tree))
    kinds = {rel: _kind(rel) for rel in paths}
    has_html = "html" in kinds.values()
    for rel in sorted(paths):
        kind = kinds[rel]
        if kind is None:
            stats.drop("not_a_document", rel)
            continue
        if has_html and kind == "text" and rel.removesuffix(".gz").endswith(".rst"):
            # Sphinx packages ship the reStructuredText sources beside the HTML built from them
            stats.drop("rst_source_of_html", rel)
            continue
        full = tree / rel
        try:
            size = full.stat().st_size
            if size > max_bytes:
                stats.drop("file_too_large", f"{rel} ({size} bytes)")
                continue
            text = _decode(full.read_bytes())
        except UnicodeDecodeError:
            stats.drop("undecodable", rel)
            continue
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            stats.drop("unreadable", f"{rel}: {exc}")
            continue
        title = ""
        if kind == "man":
            text = roff_to_text(text)
        elif kind == "info":
            text = info_to_text(text)
        elif kind == "html":
            page = extract_page(text, "file:///" + rel, with_apis=False)
            if not page.text.strip() and len(text) > 2000:
                # Themes that wrap the main column in a class the extractor reads as navigation
                # (Read the Docs' "wy-nav-content-wrap", mdBook's sidebar layout) come out empty:
                # read them again without class attributes (<main>, role="main", <nav> still count).
                page = extract_page(_CLASS_ATTR.sub("", text), "file:///" + rel, with_apis=False)
                stats.note("html_without_classes")
            text, title = page.text, page.title
        if "\x00" in text:
            stats.drop("binary", rel)
            continue
        if not text.strip():
            stats.drop("empty", rel)
            continue
        yield rel, _title(rel, title.strip()), text.strip()


def package_name(tree: Path, deb: Path) -> str:
    """The package's name: its one ``usr/share/doc/<name>`` directory, else the ``.deb``'s prefix."""
    guess = deb.name.split("_", 1)[0]
    doc = tree / "usr" / "share" / "doc"
    if (doc / guess).exists():
        return guess
    names = sorted(p.name for p in doc.iterdir()) if doc.is_dir() else []
    return names[0] if len(names) == 1 else guess
