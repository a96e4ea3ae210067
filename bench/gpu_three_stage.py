"""A short three-stage run (CPT stage 1 -> CPT stage 2 -> LoRA SFT) of the training engine on the
pipeline's real shards, on one GPU, with no orchestrator: what the training assets launch, by hand.

    python bench/gpu_three_stage.py --data .gpu_run --out $OUT [--size 124m]

``--data`` holds what the corpus assets wrote (cpt_stage1_shards/, cpt_stage2_shards/, tokenizer/,
sft_train.jsonl). Prints per-stage loss curves (every `log_every` steps) and a summary table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from training.config import LLAMA_SIZES

STAGES = ("base", "stage1", "stage2", "sft")


def configs(data: Path, work: Path, size: str, steps: dict[str, int]) -> dict[str, dict]:
    tok = str(data / "tokenizer")
    common = {"device": "cuda", "seed": 1337, "resume": False}
    sched = {
        "micro_batch_size": 16,
        "grad_accum_steps": 1,
        "eval_every": 50,
        "eval_batches": 4,
        "checkpoint_every": 0,
        "log_every": 10,
    }
    return {
        "base": {
            **common,
            "name": "base",
            "output_dir": str(work / "base"),
            "model": {
                "init": "config",
                "tokenizer_dir": tok,
                "max_position_embeddings": 2048,
                **LLAMA_SIZES[size],
            },
        },
        "stage1": {
            **common,
            "name": "cpt_stage1",
            "output_dir": str(work / "stage1"),
            "compile": True,
            "model": {"init": "pretrained", "name_or_path": str(work / "base" / "hf"), "tokenizer_dir": tok},
            "data": {
                "shards_dir": str(data / "cpt_stage1_shards"),
                "seq_len": 1024,
                "holdout": 32,
                "doc_mask": True,
            },
            "optim": {"lr": 6e-4, "min_lr": 6e-5, "warmup_steps": 20},
            "schedule": {**sched, "max_steps": steps["stage1"]},
        },
        "stage2": {
            **common,
            "name": "cpt_stage2",
            "output_dir": str(work / "stage2"),
            "compile": True,
            "model": {
                "init": "pretrained",
                "name_or_path": str(work / "stage1" / "hf"),
                "tokenizer_dir": tok,
            },
            "data": {
                "shards_dir": str(data / "cpt_stage2_shards"),
                "seq_len": 1024,
                "holdout": 32,
                "doc_mask": True,
            },
            "optim": {"lr": 3e-4, "min_lr": 3e-5, "warmup_steps": 10},
            "schedule": {**sched, "max_steps": steps["stage2"]},
        },
        "sft": {
            **common,
            "name": "sft",
            "output_dir": str(work / "sft"),
            "model": {
                "init": "pretrained",
                "name_or_path": str(work / "stage2" / "hf"),
                "tokenizer_dir": tok,
            },
            "data": {"sft_path": str(data / "sft_train.jsonl"), "seq_len": 1024, "holdout": 64},
            "optim": {"lr": 2e-4, "min_lr": 2e-5, "warmup_steps": 10},
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
            "schedule": {**sched, "micro_batch_size": 8, "max_steps": steps["sft"]},
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/three_stage"))
    ap.add_argument("--size", default="124m", choices=sorted(LLAMA_SIZES))
    ap.add_argument("--steps", default="150,60,100", help="stage1,stage2,sft optimizer steps")
    ap.add_argument("--cpu-smoke", action="store_true", help="a tiny model on the CPU, to check the script")
    args = ap.parse_args()
    s1, s2, sft = (int(x) for x in args.steps.split(","))
    cfgs = configs(args.data, args.work, args.size, {"stage1": s1, "stage2": s2, "sft": sft})
    if args.cpu_smoke:
        for cfg in cfgs.values():
            cfg.update(device="cpu", compile=False)
            cfg.setdefault("schedule", {}).update(micro_batch_size=2, eval_every=0)
        cfgs["base"]["model"].update(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stage, command in zip(STAGES, ("init", "cpt", "cpt", "sft"), strict=True):
        path = args.work / f"{stage}.json"
        path.write_text(json.dumps(cfgs[stage]))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "training", command, "--config", str(path), "--quiet"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"{stage} FAILED ({wall:.0f} s):\n{proc.stderr[-3000:]}")
            return 1
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        out_dir = Path(cfgs[stage]["output_dir"])
        metrics = out_dir / "metrics.jsonl"
        if metrics.exists():
            shutil.copy(metrics, args.out / f"{stage}_metrics.jsonl")
            curve = [json.loads(line) for line in metrics.read_text().splitlines() if '"loss"' in line]
            print(f"\n{stage}: loss every 10 steps")
            print("  " + ", ".join(f"{m['step']}:{m['loss']:.3f}" for m in curve if "loss" in m))
            evals = [json.loads(line) for line in metrics.read_text().splitlines() if '"eval_loss"' in line]
            if evals:
                print("  eval: " + ", ".join(f"{m['step']}:{m['eval_loss']:.3f}" for m in evals))
        rows.append(
            {
                "stage": stage,
                "wall_s": round(wall, 1),
                **{
                    k: summary.get(k)
                    for k in (
                        "final_loss",
                        "final_eval_loss",
                        "steps",
                        "tokens_seen",
                        "n_params",
                        "n_params_non_embedding",
                    )
                },
            }
        )
    (args.out / "three_stage_summary.json").write_text(
        json.dumps({"configs": {k: v for k, v in cfgs.items()}, "rows": rows}, indent=2)
    )
    print("\nstage    wall_s  steps  tokens_seen  final_loss  final_eval_loss")
    for r in rows:
        print(
            f"{r['stage']:<8} {r['wall_s']:>6}  {r['steps'] or '-':>5}  {r['tokens_seen'] or '-':>11}  "
            f"{r['final_loss'] if r['final_loss'] is not None else '-':>10}  {r['final_eval_loss'] or '-'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
