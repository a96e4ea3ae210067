"""``hephaestus``: the pipeline's stages from the command line, without Dagster.

Each subcommand calls the same library function the corresponding asset calls. Every command
prints a human summary (``--json``: one JSON document instead), writes into ``--out`` (always a
directory; defaults below the project home, ``$HEPHAESTUS_HOME`` or ``.hephaestus/``), and fails
with one line, ``error: <message>``, and a non-zero exit (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from cli import bfcl, crawl, ingest, train
from cli import trace as trace_cmd
from cli.common import NothingProduced, UserError, common_parser


def _version() -> str:
    try:
        return version("hephaestus-forge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    p = argparse.ArgumentParser(
        prog="hephaestus",
        description=__doc__.split("\n\n")[1].replace("\n", " ").replace("``", "`"),
        epilog="`hephaestus <command> --help` for a command's flags; README.md, 'Using the CLI', "
        "has a worked example of each.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    ingest.add_parsers(sub, common)  # ingest {openapi,python,hub}, synthesize
    crawl.add_parsers(sub, common)
    train.add_parsers(sub, common)
    bfcl.add_parsers(sub, common)  # eval bfcl, bfcl {score,download}
    trace_cmd.add_parsers(sub, common)  # trace SHARD OFFSET
    # More subcommands: one `<module>.add_parsers(sub, common)` line each, above this comment.
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, UserError | NothingProduced | FileNotFoundError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 600 else text[:597] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 error or nothing produced, 2 bad usage,
    130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except NothingProduced as e:
        if args.debug:
            raise
        print(f"warning: nothing produced: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI turns every failure into one line (--debug: all)
        if args.debug:
            raise
        hint = "" if isinstance(e, UserError) else " (--debug shows the traceback)"
        print(f"error: {_one_line(e)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
