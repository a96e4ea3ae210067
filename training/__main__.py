"""`python -m training {init,cpt,sft} --config CONFIG.json|yaml` (also `torchrun ... -m training ...`).

On success rank 0 prints one JSON line (the summary) on stdout; progress goes to stderr. On failure
the error is printed on stderr as `error: <message>` and the exit status is 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from training import COMMANDS, load_config, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--config", required=True, help="RunConfig as JSON or YAML")
    parser.add_argument("--quiet", action="store_true", help="no per-step progress on stderr")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        from training.metrics import StdoutSink

        summary = run(args.command, cfg, [] if args.quiet else [StdoutSink()])
    except Exception as e:  # noqa: BLE001 - the CLI's job is to turn any failure into a message + status
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
