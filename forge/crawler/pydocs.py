"""Where Debian's Python 3.11 HTML documentation (package ``python3.11-doc``) is on this machine.

Two places, in order: the installed package (``/usr/share/doc/python3.11/html``), then the copy that
``make pydocs`` (``.ci/fetch_python_docs.sh``, run by ``make test`` and ``make demo``) extracts without
root into ``$HEPHAESTUS_HOME/cache/python3.11-doc/usr/share/doc/python3.11/html``. ``HEPHAESTUS_HOME``
defaults to ``<repo>/.hephaestus``, as in :func:`assets.profile.default_home`. The environment is
read when the function is called, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
#: the extracted package's tree, relative to ``$HEPHAESTUS_HOME``
EXTRACTED_PYTHON_DOCS = Path("cache/python3.11-doc/usr/share/doc/python3.11/html")
#: a page every complete copy has (the real-docs crawl test starts there)
MARKER = Path("library/json.html")

_REPO_ROOT = Path(__file__).resolve().parents[2]


def python_docs_candidates(home: Path | str | None = None) -> list[Path]:
    """The directories :func:`python_docs_dir` looks in, in order."""
    if home is None:
        home = os.environ.get("HEPHAESTUS_HOME") or _REPO_ROOT / ".hephaestus"
    return [SYSTEM_PYTHON_DOCS, Path(home).expanduser().resolve() / EXTRACTED_PYTHON_DOCS]


def python_docs_dir(home: Path | str | None = None) -> Path | None:
    """The first directory holding the Python 3.11 HTML docs (one with ``library/json.html``), or
    ``None`` when neither the installed package nor the extracted copy is there.

    ``home`` overrides ``$HEPHAESTUS_HOME`` (default ``<repo>/.hephaestus``).
    """
    for candidate in python_docs_candidates(home):
        if (candidate / MARKER).is_file():
            return candidate
    return None
