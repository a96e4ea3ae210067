"""``hephaestus bfcl {download,score}`` and ``hephaestus eval bfcl``: BFCL's data, scoring, evaluation.

Responses for ``bfcl score`` are JSON lines, one per item, keyed by the item's ``id``, carrying
either ``text`` (what the model generated, with ``<tool_call>{"name": ..., "arguments": {...}}
</tool_call>`` blocks, parsed as the pipeline parses generations) or ``decoded`` (the calls already
decoded, BFCL's shape: ``[{"function_name": {"argument": value}}]``; ``[]`` for no call). For the
multi-turn categories ``decoded`` holds the conversation's calls per turn and step
(``[[[call, ...], ...], ...]``: turns -> steps -> calls, each call ``{"name": {args}}`` or BFCL's
string form ``"cd(folder='x')"``), executed against the environment classes unpacked by
``bfcl download``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cli.common import (
    BFCL_SPEC,
    UserError,
    bfcl_data_dir,
    bfcl_download_dir,
    cache_dir,
    cli_dir,
    emit,
    existing_dir,
    existing_file,
    new_output_dir,
    positive_int,
)
from contracts.bfcl import SCORED_CATEGORIES, question_file
from contracts.bfcl import category as bfcl_category

DEFAULT_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]
RESPONSES_FORMAT = (
    'one JSON object per line: {"id": "<item id>", "text": "<generated text with <tool_call> blocks>"} '
    'or {"id": "<item id>", "decoded": [{"<function>": {"<argument>": <value>}}]}'
)
MULTI_TURN_FORMAT = (
    'one JSON object per line: {"id": "<item id>", "decoded": [[[<call>, ...], ...], ...]} (turns -> steps -> '
    'calls; a call is {"<function>": {"<argument>": <value>}} or "<function>(<argument>=<value>)")'
)


def _check_data(data: Path, categories: list[str]) -> None:
    for name in categories:
        if not question_file(data, name).is_file():
            raise UserError(
                f"BFCL data not found: {question_file(data, name)} is missing; run `hephaestus bfcl download` "
                "or pass --data DIR (the bfcl_eval/data folder of the bfcl-eval wheel)"
            )


def _is_decoded(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict) and len(c) == 1 and isinstance(next(iter(c.values())), dict) for c in value
    )


def read_responses(path: Path, multi_turn: bool = False) -> list[dict[str, Any]]:
    """The response rows of ``path``, each checked; a bad line is a UserError naming ``path:line``."""
    from evaluation.bfcl.multi_turn import validate_turns

    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not JSON ({e.msg}); expected {RESPONSES_FORMAT}") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise UserError(f'{where}: needs a string "id"; expected {RESPONSES_FORMAT}')
        if multi_turn:
            problem = validate_turns(row.get("decoded"))
            if problem:
                raise UserError(f"{where}: {problem}; expected {MULTI_TURN_FORMAT}")
        elif "decoded" in row:
            if not _is_decoded(row["decoded"]):
                raise UserError(
                    f'{where}: "decoded" must be a list of {{"<function>": {{"<argument>": value}}}} objects'
                )
        elif not isinstance(row.get("text"), str):
            raise UserError(f'{where}: needs "text" (a string) or "decoded" (a list of calls)')
        rows.append(row)
    if not rows:
        raise UserError(
            f"{path}: no responses; expected {MULTI_TURN_FORMAT if multi_turn else RESPONSES_FORMAT}"
        )
    return rows


def _environments(args: argparse.Namespace) -> Path:
    from evaluation.bfcl.data import environment_dir
    from evaluation.bfcl.multi_turn import has_environment_source

    source = args.environments or environment_dir(args.data)
    if not has_environment_source(source):
        raise UserError(
            f"BFCL environment classes not found in {source}; run `hephaestus bfcl download` or pass "
            "--environments DIR (the extracted multi_turn_eval/func_source_code folder)"
        )
    return source


def _bfcl_score(args: argparse.Namespace) -> int:
    from contracts.bfcl import load_category, load_multi_turn_category
    from contracts.io import atomic_write_json, write_jsonl
    from evaluation.bfcl.multi_turn import score_conversations
    from evaluation.bfcl.runner import score_items, summarize

    _check_data(args.data, [args.category])
    multi_turn = bfcl_category(args.category).multi_turn
    source = _environments(args) if multi_turn else None
    rows = read_responses(args.responses, multi_turn)
    load = load_multi_turn_category if multi_turn else load_category
    items = {i.id: i for i in load(args.data, args.category)}
    unknown = [r["id"] for r in rows if r["id"] not in items]
    if unknown:
        raise UserError(f"{len(unknown)} response ids are not in {args.category}: {unknown[:5]}")
    if multi_turn:
        answered = [items[r["id"]] for r in rows]
        result = summarize(score_conversations(answered, {r["id"]: r for r in rows}, source))
    else:
        responses = {r["id"]: (r["decoded"] if "decoded" in r else r["text"]) for r in rows}
        result = score_items([items[r["id"]] for r in rows], None, responses)
    out = new_output_dir(args.out or cli_dir("bfcl_score", args.category), "bfcl score")
    write_jsonl(
        out / "verdicts.jsonl",
        (
            {"id": r["id"], "valid": bool(r["valid"]), "error_type": r.get("error_type")}
            for r in result["rows"]
        ),
    )
    summary = {k: v for k, v in result.items() if k != "rows"} | {"out": str(out)}
    atomic_write_json(out / "summary.json", summary)
    n, ok = result["n_items"], result["n_valid"]
    errors = result["categories"].get(args.category, {}).get("error_types", {})
    lines = [
        f"bfcl score {args.category}: {n:,} responses, {ok:,} valid ({ok / n:.1%}); "
        f"{len(items) - n:,} items of the category not answered (not counted)",
        *(f"  {e:<40} {c:>6,}" for e, c in errors.items()),
        f"written: {out / 'verdicts.jsonl'} (one verdict per response), {out / 'summary.json'}",
    ]
    emit(args, summary, "\n".join(lines))
    return 0


def _bfcl_download(args: argparse.Namespace) -> int:
    from evaluation.bfcl.data import download_bfcl_wheel, extract_bfcl_data, extract_environment_source

    out = new_output_dir(args.out, "bfcl download")
    wheel = download_bfcl_wheel(args.cache, args.spec)
    data = extract_bfcl_data(wheel, out)
    envs = extract_environment_source(wheel, out)
    emit(
        args,
        {"data_dir": str(data), "environments_dir": str(envs), "wheel": str(wheel)},
        f"BFCL data ({args.spec}): {data}\nmulti-turn environment classes (read, never installed): {envs}",
    )
    return 0


def _eval_bfcl(args: argparse.Namespace) -> int:
    from evaluation.pipeline import run_bfcl

    model: Path = args.model
    weights = [*model.glob("*.safetensors"), *model.glob("*.bin")]
    if not weights and (model / "hf" / "config.json").is_file():
        raise UserError(f"eval bfcl --model {model}: a training output; the model is {model / 'hf'}")
    if not weights or not (model / "config.json").is_file():
        raise UserError(
            f"eval bfcl --model {model}: not a Hugging Face model directory (needs config.json and weights)"
        )
    _check_data(args.data, args.categories)
    if any(bfcl_category(c).multi_turn for c in args.categories):
        args.environments = _environments(args)
    out = new_output_dir(args.out, "eval bfcl")
    cfg = {
        "environments_dir": str(args.environments.resolve()) if args.environments else None,
        "categories": args.categories,
        "limit_per_category": args.limit,
        "multi_turn_limit_per_category": args.multi_turn_limit,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
    }
    result = run_bfcl(model, args.data, cfg, out) | {"out": str(out)}
    lines = [f"eval bfcl {model}: {result['n_valid']:,} of {result['n_items']:,} valid"]
    for name, c in result["categories"].items():
        lines.append(f"  {name:<24} {c['accuracy']:>7.1%}  ({c['n_valid']}/{c['n']})")
    for name, g in result.get("summary", {}).items():
        lines.append(f"  {name + ' (summary)':<24} {g['accuracy']:>7.1%}")
    if result.get("prompts_too_long"):
        lines.append(
            f"  not generated (prompt and --max-new-tokens past the model's positions): {result['prompts_too_long']:,}"
        )
    stopped = result.get("multi_turn_stopped") or {}
    if stopped:  # e.g. every conversation past a small model's context: say so beside the zero
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(stopped.items(), key=lambda kv: -kv[1]))
        lines.append(f"  multi-turn conversations ended early: {reasons}")
    lines.append(f"written: {out / 'results.json'}, {out / 'items.jsonl'} (one row per item)")
    emit(args, result, "\n".join(lines))
    return 0


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    categories = f"one of: {', '.join(SCORED_CATEGORIES)}"
    environments = (
        "the multi-turn environment classes unpacked from the wheel (default: beside --data, "
        "where `bfcl download` puts them)"
    )
    ev = sub.add_parser("eval", help="evaluation harnesses", parents=[common]).add_subparsers(
        dest="bench", required=True, metavar="{bfcl}"
    )
    s = ev.add_parser(
        "bfcl",
        parents=[common],
        help="generate with a model on BFCL categories and score",
        description="Generate answers with a model on BFCL categories and score them with our AST checker.",
    )
    s.add_argument(
        "--model",
        required=True,
        type=existing_dir,
        help="a Hugging Face model directory (e.g. .../sft_model/hf)",
    )
    s.add_argument(
        "--data", type=Path, default=bfcl_data_dir(), help="BFCL data directory (default: %(default)s)"
    )
    s.add_argument(
        "--categories",
        nargs="+",
        choices=SCORED_CATEGORIES,
        default=DEFAULT_CATEGORIES,
        metavar="CATEGORY",
        help=f"BFCL categories, {categories} (default: {' '.join(DEFAULT_CATEGORIES)})",
    )
    s.add_argument("--environments", type=Path, metavar="DIR", help=environments)
    s.add_argument("--limit", type=positive_int, metavar="N", help="only the first N items per category")
    s.add_argument(
        "--multi-turn-limit",
        type=positive_int,
        metavar="N",
        help="only the first N conversations per multi-turn category (default: --limit)",
    )
    s.add_argument(
        "--batch-size", type=positive_int, default=8, help="sequences per batch (default: %(default)s)"
    )
    s.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=256,
        help="generated tokens per answer (default: %(default)s)",
    )
    s.add_argument(
        "--out", type=Path, default=cli_dir("eval", "bfcl"), help="output directory (default: %(default)s)"
    )
    s.set_defaults(fn=_eval_bfcl)

    bf = sub.add_parser("bfcl", help="BFCL data and scoring", parents=[common]).add_subparsers(
        dest="bfcl_cmd", required=True, metavar="{score,download}"
    )
    s = bf.add_parser(
        "score",
        parents=[common],
        help="verdicts for a file of responses",
        description=f"Score responses against BFCL's answers. Responses: {RESPONSES_FORMAT}.",
    )
    s.add_argument(
        "--category", required=True, choices=SCORED_CATEGORIES, metavar="CATEGORY", help=categories
    )
    s.add_argument("--environments", type=Path, metavar="DIR", help=environments)
    s.add_argument("--responses", required=True, type=existing_file, help="the responses (JSON lines)")
    s.add_argument(
        "--out",
        type=Path,
        help="output directory for verdicts.jsonl and summary.json (default: "
        f"{cli_dir('bfcl_score')}/<category>)",
    )
    s.add_argument(
        "--data", type=Path, default=bfcl_data_dir(), help="BFCL data directory (default: %(default)s)"
    )
    s.set_defaults(fn=_bfcl_score)

    s = bf.add_parser(
        "download",
        parents=[common],
        help="download the bfcl-eval wheel (never installed) and extract its data",
    )
    s.add_argument("--spec", default=BFCL_SPEC, help="pip requirement of the wheel (default: %(default)s)")
    s.add_argument(
        "--cache", type=Path, default=cache_dir(), help="where the wheel is kept (default: %(default)s)"
    )
    s.add_argument(
        "--out", type=Path, default=bfcl_download_dir(), help="output directory (default: %(default)s)"
    )
    s.set_defaults(fn=_bfcl_download)
