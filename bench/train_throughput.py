"""Training throughput on one GPU: our engine (training.loop.train_loop) vs the Hugging Face Trainer.

Both train the same fresh Llama (training.config.LLAMA_SIZES, vocabulary 50304, tied embeddings, fp32
weights + bf16 autocast) on the same random tokens, with the same sequence length and global batch
(`--tokens-per-step` tokens: 16 rows at seq 1024, 8 at 2048). The HF Trainer runs with stock settings
(bf16=True; its default attention, optimizer and data loader); ours with its GPU defaults (torch.compile,
fused AdamW, chunked linear cross-entropy, prefetching loader). If a micro-batch does not fit, it is halved
and gradient accumulation doubled (the table reports each one's micro-batch).

Per run: tokens/s over the steps after `--warmup` (compilation excluded, GPU synchronized at both ends),
MFU = 6 * N_non_embedding * tokens/s / peak (989 TFLOP/s dense bf16 for H100/H200), peak allocated
memory. `--doc-mask` adds runs of our engine with document masking (flex-attention, EOS every ~512 tokens)
to compare against plain causal attention.

    python bench/train_throughput.py --configs 350m:1024 124m:1024 --out results.txt
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import distributed as D  # noqa: E402
from training.config import LLAMA_SIZES, gpu_config  # noqa: E402
from training.loop import train_loop  # noqa: E402
from training.metrics import BaseSink, peak_flops  # noqa: E402
from training.model import count_params, init_model  # noqa: E402

VOCAB, EOS = 50304, 50256
SIZES = {**LLAMA_SIZES, "smoke": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4)}  # fmt: skip


class _Vocab:
    """Stands in for a tokenizer where init_model only needs the vocabulary size and special ids."""

    pad_token_id, eos_token_id, bos_token_id = 0, EOS, None

    def __len__(self) -> int:
        return VOCAB


class RandomTokens:
    """A BatchSource of uniform random tokens; with `doc_len` an EOS ends a document every ~doc_len tokens."""

    def __init__(self, seq_len: int, seed: int = 0, doc_len: int | None = None) -> None:
        self.seq_len, self.doc_len = seq_len, doc_len
        self.gen = torch.Generator().manual_seed(seed)

    def next_batch(self, n: int) -> dict[str, torch.Tensor]:
        rows = torch.randint(0, EOS, (n, self.seq_len + 1), generator=self.gen)
        if self.doc_len:
            ends = torch.rand(rows.shape, generator=self.gen) < 1.0 / self.doc_len
            rows[ends] = EOS
        return {"input_ids": rows[:, :-1].contiguous(), "labels": rows[:, 1:].contiguous()}

    def eval_batches(self, n: int, max_batches: int) -> list[dict[str, torch.Tensor]]:
        return []

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


def _model_cfg(size: str, seq: int):
    cfg = gpu_config(tempfile.mkdtemp(prefix="bench-"), size="350m")
    for k, v in SIZES[size].items():
        setattr(cfg.model, k, v)
    cfg.model.max_position_embeddings = max(seq, 2048)
    cfg.data.seq_len = seq
    return cfg


def _clean() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()


class _Clock(BaseSink):
    """Wall time at logged steps (the loop has read loss/grad-norm from the GPU before calling this)."""

    def __init__(self) -> None:
        self.t: dict[int, float] = {}
        self.loss: dict[int, float] = {}

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics:
            self.t[step], self.loss[step] = time.perf_counter(), metrics["loss"]


def run_ours(size: str, seq: int, rows: int, micro: int, warmup: int, steps: int, doc_mask: bool) -> dict:
    cfg = _model_cfg(size, seq)
    cfg.data.doc_mask = doc_mask
    s = cfg.schedule
    s.micro_batch_size, s.grad_accum_steps = micro, rows // micro
    s.max_steps, s.log_every, s.eval_every, s.checkpoint_every = warmup + steps, warmup, 0, 0
    s.final_checkpoint = False
    env = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cuda", 0))
    torch.manual_seed(0)
    attn = "flex_attention" if doc_mask else "sdpa"
    model = init_model(cfg.model, _Vocab(), attn).to(env.device)
    n = count_params(model)
    clock = _Clock()
    t0 = time.perf_counter()
    train_loop(cfg, model, RandomTokens(seq, doc_len=512 if doc_mask else None), env, [clock], n,
               eos_id=EOS if doc_mask else None)  # fmt: skip
    last = warmup + steps
    dt = clock.t[last] - clock.t[warmup]
    return {
        "n": n,
        "tps": steps * rows * seq / dt,
        "wall": time.perf_counter() - t0,
        "loss": clock.loss[last],
    }


def run_hf(size: str, seq: int, rows: int, micro: int, warmup: int, steps: int) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    mc = _model_cfg(size, seq).model
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=mc.hidden_size, intermediate_size=mc.intermediate_size,
        num_hidden_layers=mc.num_hidden_layers, num_attention_heads=mc.num_attention_heads,
        num_key_value_heads=mc.num_key_value_heads, max_position_embeddings=mc.max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=EOS,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    n = count_params(model)
    total = (warmup + steps) * rows
    data = torch.randint(0, EOS, (total, seq), generator=torch.Generator().manual_seed(0))

    class DS(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return total

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": data[i], "labels": data[i]}

    times: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (warmup, warmup + steps):
                torch.cuda.synchronize()
                times[state.global_step] = time.perf_counter()

    out = tempfile.mkdtemp(prefix="bench-hf-")
    args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=micro, gradient_accumulation_steps=rows // micro,
        max_steps=warmup + steps, bf16=True, learning_rate=6e-4, save_strategy="no", report_to="none",
        logging_steps=10_000, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=DS(), callbacks=[Clock()])
    t0 = time.perf_counter()
    trainer.train()
    dt = times[warmup + steps] - times[warmup]
    info = {"attn": model.config._attn_implementation, "optim": str(args.optim)}
    del trainer, model
    return {"n": n, "tps": steps * rows * seq / dt, "wall": time.perf_counter() - t0, **info}


def measure(engine: str, size: str, seq: int, rows: int, warmup: int, steps: int) -> dict:
    """Run one engine, halving the micro-batch on out-of-memory."""
    micro = rows
    while True:
        _clean()
        try:
            if engine == "hf":
                r = run_hf(size, seq, rows, micro, warmup, steps)
            else:
                r = run_ours(size, seq, rows, micro, warmup, steps, doc_mask=engine == "ours+docmask")
            r.update(micro=micro, peak_gib=torch.cuda.max_memory_allocated() / 2**30)
            return r
        except torch.cuda.OutOfMemoryError:
            if micro == 1:
                raise
            micro //= 2
            print(f"  {engine} {size} seq {seq}: out of memory, micro-batch -> {micro}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["350m:1024"], help="SIZE:SEQ, sizes: " + ",".join(SIZES))
    p.add_argument("--doc-mask", nargs="*", default=[], help="SIZE:SEQ also run with document masking")
    p.add_argument("--tokens-per-step", type=int, default=16384)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", help="write the table here (and JSON rows beside it)")
    args = p.parse_args(argv)
    import transformers

    dev = torch.device("cuda", 0)
    peak = peak_flops(dev, None)
    head = (f"# train_throughput {datetime.date.today()} on {torch.cuda.get_device_name(dev)}; torch "
            f"{torch.__version__}, transformers {transformers.__version__}; {args.tokens_per_step} tokens/step, "
            f"{args.warmup} warm-up + {args.steps} timed steps; MFU vs {peak / 1e12:.0f} TFLOP/s")  # fmt: skip
    cols = "| model | seq | engine | micro x accum | tokens/s | MFU | peak GiB | vs HF |"
    lines = [head, "", cols, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    rows_json = []
    jobs = [(c, e) for c in args.configs for e in ("hf", "ours")]
    jobs += [(c, "ours+docmask") for c in args.doc_mask]
    hf_tps: dict[str, float] = {}
    for conf, engine in jobs:
        size, seq = conf.split(":")[0], int(conf.split(":")[1])
        rows = args.tokens_per_step // seq
        try:
            r = measure(engine, size, seq, rows, args.warmup, args.steps)
        except Exception as e:  # noqa: BLE001 - one failed run must not lose the others' rows
            print(f"| {size} | {seq} | {engine} | failed: {type(e).__name__}: {str(e)[:300]} |", flush=True)
            lines.append(f"| {size} | {seq} | {engine} | failed: {type(e).__name__} | | | | |")
            continue
        if engine == "hf":
            hf_tps[conf] = r["tps"]
        ratio = f"{r['tps'] / hf_tps[conf]:.2f}x" if conf in hf_tps else "-"
        m = 6 * r["n"] * r["tps"] / peak
        line = (f"| {size} ({r['n'] / 1e6:.0f}M non-emb) | {seq} | {engine} | {r['micro']} x {rows // r['micro']} "
                f"| {r['tps']:,.0f} | {m:.1%} | {r['peak_gib']:.1f} | {ratio} |")  # fmt: skip
        print(line, flush=True)
        lines.append(line)
        rows_json.append({"size": size, "seq": seq, "engine": engine, "mfu": m, **r})
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
            Path(args.out).with_suffix(".json").write_text(json.dumps(rows_json, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
