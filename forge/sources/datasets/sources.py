"""Where dataset records come from: a local file or directory (JSONL, JSON, Parquet), a URL
(downloaded once into a cache with httpx), or a dataset hub id (``huggingface_hub``).

:func:`iter_records` yields ``(row_key, record)`` pairs; ``row_key`` is ``<file>#<index>``, the
lineage of the row. A line or file that does not parse is counted in ``stats`` (``bad_json_line``,
``bad_json_file``, ``bad_parquet_file``) and skipped, never raised. No code path here is needed
by the tests to reach the internet: URLs are tested against a server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from forge.core.stats import StepStats

SUFFIXES = (".jsonl", ".json", ".parquet")


def data_files(path: Path, split: str | None, stats: StepStats) -> list[Path]:
    """The data files of a file or directory; with ``split``, the files whose path names it
    (``train.jsonl``, ``data/train-00000.parquet``, ``train/x.json``) when any does."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"dataset path not found: {path}")
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES) and not p.name.startswith(".")
    )
    if split:
        picked = [
            p
            for p in files
            if any(part.split("-")[0].split(".")[0] == split for part in p.relative_to(path).parts)
        ]
        if picked:
            return picked
        stats.note("split_not_in_file_names")
    return files


def _records_of_json(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):  # {"data": [...]} / {"rows": [...]} / one record
        for key in ("data", "rows", "examples", "train"):
            if isinstance(obj.get(key), list):
                return obj[key]
        return [obj]
    return [obj]


#: Default bounds on one dataset file (``DatasetSpec.max_row_bytes`` / ``max_file_bytes``): a JSONL
#: line longer than this is a ``max_row_bytes`` skip (never held whole), a whole-file JSON larger than
#: this a ``max_file_bytes`` skip. Real rows are a few KB; the largest public files a few hundred MB.
MAX_ROW_BYTES = 8 * 2**20
MAX_FILE_BYTES = 1 * 2**30


def _read_line(fh: Any, limit: int) -> tuple[bytes, bool]:
    """The next line of a binary file, or ``(b"", True)`` for one longer than ``limit`` bytes,
    which is read past in chunks (so memory stays bounded by ``limit``)."""
    line = fh.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line, False
    while line and not line.endswith(b"\n"):
        line = fh.readline(limit + 1)
    return b"", True


def iter_file_records(
    path: Path,
    stats: StepStats,
    label: str | None = None,
    *,
    max_row_bytes: int = MAX_ROW_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> Iterator[tuple[str, Any]]:
    """(row_key, record) for every record of one file; keys are ``<label or path>#<index>``.

    Bad input is a counted drop, never an exception: an undecodable or too-deep JSONL line
    (``bad_json_line``), a line over ``max_row_bytes`` (``max_row_bytes``), a whole-file JSON that
    does not parse (``bad_json_file``) or is over ``max_file_bytes`` (``max_file_bytes``)."""
    name = path.name
    where = label or str(path)
    if name.endswith(".jsonl"):
        with open(path, "rb") as fh:
            i = -1
            while True:
                i += 1
                raw, too_long = _read_line(fh, max_row_bytes)
                if too_long:
                    stats.drop(
                        "max_row_bytes", f"{path}:{i + 1}: longer than max_row_bytes={max_row_bytes:,}"
                    )
                    continue
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    yield f"{where}#{i}", json.loads(line)
                except (ValueError, RecursionError, MemoryError) as exc:
                    stats.drop("bad_json_line", f"{path}:{i + 1}: {type(exc).__name__}: {str(exc)[:200]}")
    elif name.endswith(".json"):
        size = path.stat().st_size
        if size > max_file_bytes:
            stats.drop("max_file_bytes", f"{path}: {size:,} bytes > max_file_bytes={max_file_bytes:,}")
            return
        try:
            with open(path, encoding="utf-8") as fh:
                records = _records_of_json(json.load(fh))
        except (ValueError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
            stats.drop("bad_json_file", f"{path}: {type(exc).__name__}: {str(exc)[:200]}")
            return
        for i, rec in enumerate(records):
            yield f"{where}#{i}", rec
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            i = 0
            for batch in pf.iter_batches(batch_size=1024):
                for rec in batch.to_pylist():
                    yield f"{where}#{i}", rec
                    i += 1
        except (pa.ArrowException, OSError) as exc:
            stats.drop("bad_parquet_file", f"{path}: {exc}")
    else:
        stats.drop("unknown_file_type", str(path))


def download(url: str, cache_dir: Path, *, timeout_s: float = 60.0) -> Path:
    """The file at ``url`` in ``cache_dir`` (downloaded once, streamed to a temporary name and
    renamed, so a killed download never leaves a partial file under the final name)."""
    import httpx

    cache_dir.mkdir(parents=True, exist_ok=True)
    base = Path(urlparse(url).path).name or "data.jsonl"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{base}"
    if target.is_file():
        return target
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache_dir)
    try:
        with (
            os.fdopen(fd, "wb") as fh,
            httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as resp,
        ):
            resp.raise_for_status()
            for block in resp.iter_bytes(1 << 20):
                fh.write(block)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def hub_snapshot(hub_id: str, cache_dir: Path, *, revision: str | None = None) -> Path:
    """A local snapshot of dataset ``hub_id`` (data files only) via ``huggingface_hub``;
    honours HF_HUB_OFFLINE / HF_ENDPOINT like any hub client."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise RuntimeError("reading a dataset hub id needs the huggingface_hub package") from exc
    return Path(
        snapshot_download(
            repo_id=hub_id,
            repo_type="dataset",
            revision=revision,
            cache_dir=str(cache_dir),
            allow_patterns=[f"*{s}" for s in SUFFIXES],
        )
    )


def resolve(spec: dict, cache_dir: Path) -> Path:
    """The local file or directory a dataset spec points at (``path``, ``url`` or ``hub_id``)."""
    given = [k for k in ("path", "url", "hub_id") if spec.get(k)]
    if len(given) != 1:
        raise ValueError(f"dataset {spec.get('name')!r}: give exactly one of path, url, hub_id (got {given})")
    if spec.get("path"):
        return Path(spec["path"]).expanduser()
    if spec.get("url"):
        return download(spec["url"], cache_dir / "urls")
    return hub_snapshot(spec["hub_id"], cache_dir / "hub", revision=spec.get("revision"))


def iter_records(spec: dict, cache_dir: Path, stats: StepStats) -> Iterator[tuple[str, Any]]:
    """(row_key, record) for every record of the dataset ``spec`` describes."""
    root = resolve(spec, cache_dir)
    for f in data_files(root, spec.get("split"), stats):
        if spec.get("url"):
            label = spec["url"]
        elif spec.get("hub_id"):
            rel = f.relative_to(root) if root.is_dir() else f.name
            label = f"hf://datasets/{spec['hub_id']}/{rel}"
        else:
            label = str(f)
        bounds = {k: spec[k] for k in ("max_row_bytes", "max_file_bytes") if spec.get(k)}
        yield from iter_file_records(f, stats, label, **bounds)
