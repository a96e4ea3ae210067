"""Throughput of BFCL's multi-turn categories: our engine vs batched ``generate`` on the same conversations.

One invocation, one GPU, one model (Llama-3.2-1B's shape, random weights from config, bf16, as
``bench/eval_throughput.py``), the tokenizer trained here on the prompts. Timed in one run:

* ``single_turn_engine``: the 1,390 non-live single-turn prompts on the engine (the reference the
  issue's budget is stated against: multi-turn in at most 3x its time);
* ``multi_turn_engine`` / ``multi_turn_generate``: the 800 conversations of the four multi-turn
  categories run to the end by :func:`evaluation.bfcl.multi_turn.run_conversations` (every round
  one batch of short prefills and decodes; calls executed in the environment worker; a random model
  rarely calls, so most turns are one reply) on the engine, then on batched ``model.generate``.

Needs the extracted BFCL data and environment classes (``hephaestus bfcl download``).

    python bench/bfcl_multi_turn_throughput.py --data .hephaestus/cache/bfcl_data_bfcl_eval-2026.3.23-py3-none-any/bfcl_eval/data
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_throughput import build_model, build_tokenizer, load_conversations, timed  # noqa: E402

from contracts.bfcl import MULTI_TURN_CATEGORIES, load_multi_turn_category  # noqa: E402
from evaluation.bfcl.data import environment_dir, prompt_functions  # noqa: E402
from evaluation.bfcl.multi_turn import Limits, run_conversations  # noqa: E402
from evaluation.generation.generate import generate  # noqa: E402


def run(args: argparse.Namespace) -> str:
    items = [i for c in MULTI_TURN_CATEGORIES for i in load_multi_turn_category(args.data, c, args.limit)]
    single, source = load_conversations(args.data)
    single = single[: args.limit] if args.limit else single
    texts = [
        {"messages": t, "tools": prompt_functions(i.functions, i.category)}
        for i in items
        for t in i.turns
        if t
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(single + texts, Path(tmp), args.vocab_size)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = build_model(args.device, dtype, tiny=args.tiny)
    model.resize_token_embeddings(len(tokenizer))
    source_dir = environment_dir(args.data)
    limits = Limits(max_prompt_tokens=model.config.max_position_embeddings - args.max_new_tokens)
    generate(model, tokenizer, single[:2], 4, 2)  # warm-up
    rows = []
    _, seconds = timed(
        lambda: generate(model, tokenizer, single, args.max_new_tokens, args.slots), args.device
    )
    rows.append(("single_turn_engine", len(single), len(single), seconds))
    print(rows[-1], flush=True)
    runs = (("multi_turn_engine", True),) + (() if args.skip_generate else (("multi_turn_generate", False),))
    for name, engine in runs:
        out, seconds = timed(
            lambda engine=engine: run_conversations(
                model,
                tokenizer,
                items,
                source_dir,
                args.max_new_tokens,
                args.slots,
                limits,
                use_engine=engine,
            ),
            args.device,
        )
        replies = sum(len(step) for r in out for step in r["decoded"])
        rows.append((name, len(items), replies, seconds))
        print(rows[-1], flush=True)
    head = (
        f"# BFCL multi-turn throughput — {date.today()} — {platform.node()} — {args.device} "
        f"({torch.cuda.get_device_name() if args.device == 'cuda' else platform.machine()}); "
        f"model: {'tiny' if args.tiny else 'Llama-3.2-1B shape'}, {dtype}; {args.max_new_tokens} new tokens; "
        f"single-turn prompts: {source}"
    )
    lines = [head, f"{'run':<22}{'items':>8}{'replies':>9}{'seconds':>10}{'vs single-turn':>16}"]
    base = rows[0][3]
    for name, n, replies, seconds in rows:
        lines.append(f"{name:<22}{n:>8}{replies:>9}{seconds:>10.1f}{seconds / base:>15.2f}x")
    if len(rows) > 2:
        lines.append(f"engine vs generate on the conversations: {rows[2][3] / rows[1][3]:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the extracted bfcl_eval/data folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model (smoke test on CPU)")
    parser.add_argument("--limit", type=int, help="first N items per category only (smoke test)")
    parser.add_argument("--skip-generate", action="store_true", help="time the engine only (no baseline)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = run(args)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
