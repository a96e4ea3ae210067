"""Atomic file writes: a file is written under a temporary name in its directory and renamed into
place, so a killed run leaves the previous file intact and readers never see half a file; a whole
directory the same way (:func:`atomic_directory`).

Every package writes through these (``forge.core.io`` re-exports them), so there is one copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text, written atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Pretty JSON (indent 2, sorted keys, ``str`` for what JSON cannot hold), written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Any) -> Path:
    """One ``json.dumps`` line per row (default separators, key order kept), written atomically."""
    return atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """The rows of a JSON-lines file, blank lines skipped; a bad line raises naming ``path:line``."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def swap_directory(src: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Replace ``out_dir`` by ``src`` (a sibling on the same filesystem) with two renames: the old one
    aside, the new one in, then the old one removed. Readers see the whole old or the whole new
    directory; a crash between the renames leaves the old one as ``.<name>.old-*`` beside it, never a
    half-written ``out_dir``, and a failed rename puts the old one back."""
    src, out_dir = Path(src), Path(out_dir)
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out_dir, old)
    try:
        os.replace(src, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``out_dir``; on success swap it into place (:func:`swap_directory`).

    On an exception the temporary directory is removed and ``out_dir`` is untouched; a SIGKILL
    leaves a hidden ``.<name>.*.tmp`` sibling that the next run ignores.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
        swap_directory(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
