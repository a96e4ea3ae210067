"""Greedy-output agreement of our engine with HF ``generate`` on a TRAINED model, in bf16 on a GPU.

With random weights the greedy choice is a near-tie at most steps, so bf16 rounding that depends
on batch shape flips it and the comparison says little (bench/results/..._eval_throughput_h100.txt).
This runs both paths on a model the three-stage run trained on the pipeline's data:

    python bench/eval_agreement.py --model /tmp/three_stage/sft/hf --bfcl bench/data/bfcl --n 256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evaluation.generation.engine import Engine, EngineConfig
from evaluation.generation.generate import hf_generate_ids, render_prompt, stop_token_ids

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def _until_stop(ids: list[int], stops: list[int]) -> list[int]:
    for i, t in enumerate(ids):
        if t in stops:
            return ids[: i + 1]
    return ids


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--bfcl", type=Path, default=Path("bench/data/bfcl"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(args.model)
    model = (
        AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).to(device).eval()
    )
    items = [
        json.loads(line)
        for c in CATEGORIES
        for line in (args.bfcl / f"BFCL_v4_{c}.json").read_text().splitlines()
        if line.strip()
    ]
    items = items[:: max(1, len(items) // args.n)][: args.n]
    prompts = [render_prompt(tok, {"messages": i["question"][0], "tools": i["function"]}) for i in items]
    encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    stops = stop_token_ids(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]

    t0 = time.perf_counter()
    ours = Engine(model, stops, (), EngineConfig(slots=128)).generate_ids(encoded, args.max_new_tokens)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = hf_generate_ids(model, encoded, stops, pad, args.max_new_tokens, 128)
    t_ref = time.perf_counter() - t0

    same_tokens = total = same_seq = 0
    first_diff = []
    for a, b in zip(ours, ref, strict=True):
        a, b = _until_stop(a, stops), _until_stop(b, stops)
        n = max(len(a), len(b))
        k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        same_tokens += k  # tokens agreed before the first divergence (after it, contexts differ)
        total += n
        same_seq += a == b
        if a != b:
            first_diff.append(k)
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": args.dtype,
        "model": str(args.model),
        "n_prompts": len(items),
        "max_new_tokens": args.max_new_tokens,
        "token_agreement_prefix": round(same_tokens / max(total, 1), 4),
        "identical_sequences": f"{same_seq}/{len(items)}",
        "median_first_divergence": sorted(first_diff)[len(first_diff) // 2] if first_diff else None,
        "engine_s": round(t_ours, 2),
        "generate_b128_s": round(t_ref, 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
