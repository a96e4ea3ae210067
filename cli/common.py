"""What every subcommand shares: the project home, the error classes, argparse value types, output.

The one error path: a command raises :class:`UserError` (a mistake the user can fix, said with the
offending path, value or key) or :class:`NothingProduced` (the command ran but wrote nothing, with
the reason); ``cli.main`` prints ``error: <message>`` or ``warning: nothing produced: <reason>`` on
stderr and exits 1. Values that can never be right (a negative timeout, zero workers, an unknown
category) are refused by argparse itself, which exits 2 with its usage line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository this CLI lives in: relative paths in the examples and defaults are resolved here,
#: never against the working directory.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The pinned bfcl-eval wheel whose data `bfcl download` extracts and `bfcl score`/`eval bfcl` read.
BFCL_SPEC = "bfcl-eval==2026.3.23"
_BFCL_DIR = "bfcl_data_bfcl_eval-2026.3.23-py3-none-any"


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as ``error: <message>``, exit 1."""


class NothingProduced(Exception):
    """The command ran but produced nothing: printed as ``warning: nothing produced: <reason>``, exit 1."""


def home() -> Path:
    """The project home: ``$HEPHAESTUS_HOME``, else ``.hephaestus/`` in the repository (as ``make``
    and the Dagster assets use). The CLI writes below ``<home>/cli/`` and caches in ``<home>/cache/``."""
    return Path(os.environ.get("HEPHAESTUS_HOME") or REPO_ROOT / ".hephaestus").resolve()


def cache_dir() -> Path:
    return home() / "cache"


def cli_dir(*parts: str) -> Path:
    """Default output directory of a command: ``<home>/cli/<parts...>``."""
    return home().joinpath("cli", *parts)


def bfcl_download_dir() -> Path:
    return cache_dir() / _BFCL_DIR


def bfcl_data_dir() -> Path:
    """Where `hephaestus bfcl download` leaves BFCL's data (the default `--data` of the BFCL commands)."""
    return bfcl_download_dir() / "bfcl_eval" / "data"


# ------------------------------------------------------------------------------ argparse types
def _number(kind: type, low: float, strict: bool, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


#: an integer >= 1
positive_int = _number(int, 0, True, "a positive integer")
#: an integer >= 0
non_negative_int = _number(int, 0, False, "a non-negative integer")
#: a number > 0
positive_float = _number(float, 0.0, True, "a positive number")
#: a number >= 0
non_negative_float = _number(float, 0.0, False, "a non-negative number")


def existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return path


def existing_dir(text: str) -> Path:
    path = existing_path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory")
    return path


def existing_file(text: str) -> Path:
    path = existing_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    return path


def common_parser() -> argparse.ArgumentParser:
    """``--json`` and ``--debug`` for every subcommand (SUPPRESS: the top-level ``--debug`` survives)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the result as one JSON document on stdout instead of the human summary",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error instead of the one-line message",
    )
    return p


# ------------------------------------------------------------------------------------ output
def progress_bar(unit: str, total: int | None = None):
    """A tqdm bar on stderr (None when tqdm is missing; ``TQDM_DISABLE=1`` silences it)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def emit(args: argparse.Namespace, result: dict[str, Any], human: str) -> None:
    """The command's result: ``human`` text, or with ``--json`` the ``result`` as JSON (stdout)."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(human)


def drops_summary(meta: dict[str, Any]) -> list[str]:
    """``skipped: N by reason:`` and one line per (step, reason) of an ingest's ``drops`` metadata."""
    drops = meta.get("drops", {})
    skipped = [  # stats_meta's "dropped", StepStats.as_dict's "dropped_by_reason"
        (step, reason, n)
        for step, d in drops.items()
        for reason, n in (d.get("dropped") or d.get("dropped_by_reason") or {}).items()
    ]
    lines = [f"skipped: {sum(n for *_, n in skipped):,}" + (" by reason:" if skipped else "")]
    for step, reason, n in sorted(skipped, key=lambda x: -x[2]):
        lines.append(f"  {step:<20} {reason:<28} {n:>8,}")
    return lines


def new_output_dir(path: Path, what: str) -> Path:
    """``--out``: a directory; its parent must exist unless it is below the project home (the
    defaults), so a typo in a path is an error instead of a new tree somewhere unexpected."""
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} --out {path} is a file; --out is always a directory")
    inside_home = path.resolve().is_relative_to(home())
    if not inside_home and not path.parent.is_dir():
        raise UserError(f"{what} --out {path}: parent directory {path.parent} does not exist")
    return path
