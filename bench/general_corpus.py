"""Build a profile's general corpus (code and text stages run directly, no Dagster) and count its tokens.

Tokens are estimated as characters / 4 (the corpus stage counts real ones). The table compares, in
the same run, the local sources the corpus had before registry packages (the baseline: this
machine's stdlib and installed packages, their READMEs and docstrings) with the registry packages
(``pypi:``, ``npm:``, ``deb:`` entries), per source, after the quality filters.

    .venv/bin/python bench/general_corpus.py --profile gpu --out /tmp/general_gpu

Downloads go to ``$HEPHAESTUS_HOME/cache`` (default ``.hephaestus/cache``) and are reused.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from assets.profile import default_home, load_settings
from forge.sources.general import CODE_STAGE, TEXT_STAGE


def _is_registry(source: str) -> bool:
    return source.split(":", 1)[0] in ("pypi", "npm", "deb")


def _table(kind: str, meta: dict, seconds: float) -> list[str]:
    by_source = meta["by_source"]
    lines = [
        f"## {kind}: {meta['n_rows']:,} documents, {meta['est_tokens']:,} tokens (chars/4), {seconds:,.0f} s",
        "",
    ]
    lines.append(f"| {'source':<44} | {'docs':>8} | {'tokens':>12} |")
    lines.append(f"|{'-' * 46}|{'-' * 9}:|{'-' * 13}:|")
    groups = {"baseline (local)": 0, "registry packages": 0}
    for source, t in sorted(by_source.items(), key=lambda kv: -kv[1]["n_chars"]):
        tokens = t["n_chars"] // 4
        groups["registry packages" if _is_registry(source) else "baseline (local)"] += tokens
        lines.append(f"| {source:<44} | {t['n_docs']:>8,} | {tokens:>12,} |")
    lines.append("")
    for name, tokens in groups.items():
        lines.append(f"{kind} {name}: {tokens:,} tokens")
    drops = meta["drops"]
    for step, d in drops.items():
        lines.append(
            f"{step}: in {d['n_in']:,}, kept {d['n_kept']:,}, dropped {json.dumps(d['dropped'], sort_keys=True)}"
        )
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--out", type=Path, required=True, help="where raw/{code,text}_documents are written")
    parser.add_argument("--kinds", default="code,text")
    args = parser.parse_args()
    settings = load_settings(args.profile)
    cache = default_home(settings.paths.home) / "cache"
    min_chars = settings.warehouse.min_chars
    report = [
        f"# General corpus of profile `{args.profile}` (bench/general_corpus.py), "
        f"{platform.node()} {platform.machine()}, cache {cache}",
        "",
    ]
    total = 0
    for kind in args.kinds.split(","):
        stage, cfg = (
            (CODE_STAGE, settings.sources.code) if kind == "code" else (TEXT_STAGE, settings.sources.text)
        )
        start = time.time()
        meta = stage.run(
            cfg, min_chars=min_chars, out_dir=args.out / "raw" / f"{kind}_documents", cache_dir=cache
        )
        report += _table(kind, meta, time.time() - start)
        total += meta["est_tokens"]
        print("\n".join(report), flush=True)
    report.append(f"TOTAL general tokens (chars/4): {total:,}")
    print(report[-1])
    (args.out / "report.txt").write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
