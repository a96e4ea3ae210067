"""``hephaestus train {init,cpt,sft} --config FILE``: one training stage, as the pipeline runs it.

The config is a RunConfig (``training/config.py``) in YAML or JSON; ``examples/train/`` holds one per
stage. Relative paths in it are taken relative to the repository root, as in the profiles, so the
examples work from any directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.common import REPO_ROOT, emit, existing_file

EXAMPLES = REPO_ROOT / "examples" / "train"
_SQLITE = "sqlite:///"


def _anchored(value: str | None, *, only_if_exists: bool = False) -> str | None:
    """``value`` made absolute against the repository root (None and absolute paths unchanged);
    ``only_if_exists``: leave it alone unless that path exists (a hub id such as ``org/model``)."""
    if not value or Path(value).expanduser().is_absolute():
        return value
    anchored = REPO_ROOT / Path(value).expanduser()
    return str(anchored) if anchored.exists() or not only_if_exists else value


def anchor_paths(cfg: Any) -> Any:
    """The RunConfig's relative paths (output, model, tokenizer, data, a SQLite tracking store)
    resolved against the repository root."""
    cfg.output_dir = _anchored(cfg.output_dir)
    cfg.model.name_or_path = _anchored(cfg.model.name_or_path, only_if_exists=True)
    cfg.model.tokenizer_dir = _anchored(cfg.model.tokenizer_dir)
    cfg.data.shards_dir = _anchored(cfg.data.shards_dir)
    cfg.data.sft_path = _anchored(cfg.data.sft_path)
    if cfg.mlflow is not None and cfg.mlflow.tracking_uri.startswith(_SQLITE):
        db = cfg.mlflow.tracking_uri[len(_SQLITE) :]
        cfg.mlflow.tracking_uri = _SQLITE + _anchored(db)
    return cfg


def _train(args: argparse.Namespace) -> int:
    from training import load_config, run
    from training.metrics import StdoutSink

    cfg = anchor_paths(load_config(args.config))
    summary = run(args.command, cfg, [] if args.quiet else [StdoutSink()])
    out = Path(cfg.output_dir)
    shown = {k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
    lines = [f"train {args.command}: done; output: {out}"]
    lines += [f"  {k:<24} {v}" for k, v in sorted(shown.items())[:16]]
    lines.append(f"model (Hugging Face format): {out / 'hf'}")
    if (out / "adapter").is_dir():
        lines.append(f"LoRA adapter alone: {out / 'adapter'}")
    emit(args, summary, "\n".join(lines))
    return 0


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    examples = ", ".join(str(p.relative_to(REPO_ROOT)) for p in sorted(EXAMPLES.glob("*.yaml")))
    s = sub.add_parser(
        "train",
        parents=[common],
        help="one training stage (init, cpt, sft) from a RunConfig file",
        description="Run one training stage: `init` exports a fresh base model, `cpt` continues "
        "pre-training on packed token shards, `sft` instruction-tunes (LoRA by default) on a "
        "chat JSONL. Outputs land in the config's output_dir: hf/ (the model), adapter/ (LoRA SFT), "
        "checkpoints/, metrics.jsonl, summary.json.",
        epilog=f"example configs, one per stage: {examples} (keys: training/config.py, RunConfig). "
        "e.g. hephaestus train init --config examples/train/init.yaml",
    )
    s.add_argument("command", choices=["init", "cpt", "sft"], help="the stage to run")
    s.add_argument(
        "--config",
        required=True,
        type=existing_file,
        help="RunConfig as YAML or JSON; relative paths in it are relative to the repository root",
    )
    s.add_argument("--quiet", action="store_true", help="no per-step progress on stderr")
    s.set_defaults(fn=_train)
