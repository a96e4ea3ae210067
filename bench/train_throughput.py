"""Training throughput on one GPU: our engine (training.loop.train_loop) against its peers, in one invocation.

Engines (`--engines`), each on the same fresh Llama (training.config.LLAMA_SIZES, vocabulary 50304, tied
embeddings) with the same random tokens, sequence length and global batch (`--tokens-per-step`, several
values allowed: 16384 is 16 rows at seq 1024):

- `hf`: the Hugging Face Trainer, stock settings (bf16=True: fp32 weights + bf16 autocast; its default
  attention, AdamW and data loader).
- `hf+liger`: the same Trainer on a model built after `liger_kernel.transformers.apply_liger_kernel_to_llama`
  (RoPE, RMSNorm, SwiGLU, fused linear cross-entropy); the patch is undone afterwards so later runs of
  the other engines are stock.
- `ours`: our engine with its GPU defaults (fp32 weights + bf16 autocast, torch.compile per block, fused
  AdamW, chunked linear cross-entropy, prefetching loader); `ours+fp8` the same with `perf.float8`
  (torchao float8 linears; MFU is still counted against the dense bf16 peak); `ours+docmask` with document
  masking (flex-attention, EOS every ~512 tokens; `--doc-mask`).
- `torchtitan`: torchtitan's own Llama 3 `Transformer` (the PyPI wheel's `torchtitan.models.llama3`) at the
  same dims (FFN width and weight tying matched), each block `torch.compile(fullgraph=True)` and the loss
  compiled as torchtitan does, fused AdamW, grad clipping at 1.0. Mixed precision as torchtitan does on a
  single device (its `maybe_enable_amp`): fp32 parameters under bf16 autocast. Trainer-only packages its
  package imports but the model never uses (datasets, tensorboard, wandb) are stubbed when absent; the
  JSON row says which.

If a micro-batch does not fit, it is halved and gradient accumulation doubled (the table reports each
one's micro-batch); a run that fails prints a row with its error and the others go on.

Per run: tokens/s over the steps after `--warmup` (compilation excluded, GPU synchronized at both ends),
MFU = 6 * N_non_embedding * tokens/s / peak (989 TFLOP/s dense bf16 for H100/H200), peak allocated
memory, and the ratio to stock HF and to torchtitan at the same size, seq and tokens/step.

`--profile-out FILE`: the torch profiler over `--profile-steps` steps of `ours` after warm-up at the first
config: kernel time by category, the top 15 kernels and the GPU idle fraction (bench/kernel_breakdown.py).
`--parity-steps N`: ours bf16 vs ours+fp8 from the same init for N steps on learnable motif tokens
(bench/float8_parity.py); both curves to `--parity-out` .json/.png with the final-loss relative difference.

    python bench/train_throughput.py --configs 350m:1024 1b:1024 --tokens-per-step 16384 65536 --out t.txt
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.float8_parity import TokenRows  # noqa: E402
from training import distributed as D  # noqa: E402
from training.config import LLAMA_SIZES, gpu_config  # noqa: E402
from training.loop import train_loop  # noqa: E402
from training.metrics import BaseSink, peak_flops  # noqa: E402
from training.model import count_params, init_model  # noqa: E402

VOCAB, EOS = 50304, 50256
SIZES = {**LLAMA_SIZES, "smoke": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4)}  # fmt: skip
ENGINES = ("hf", "hf+liger", "ours", "ours+fp8", "torchtitan", "ours+docmask")
DEFAULT_ENGINES = ["hf", "hf+liger", "ours", "ours+fp8", "torchtitan"]


class _Vocab:
    """Stands in for a tokenizer where init_model only needs the vocabulary size and special ids."""

    pad_token_id, eos_token_id, bos_token_id = 0, EOS, None

    def __len__(self) -> int:
        return VOCAB


class RandomTokens(TokenRows):
    """Uniform random tokens; with `doc_len` an EOS ends a document every ~doc_len tokens."""

    def __init__(self, seq_len: int, seed: int = 0, doc_len: int | None = None) -> None:
        self.seq_len, self.doc_len = seq_len, doc_len
        self.gen = torch.Generator().manual_seed(seed)

    def rows(self, n: int) -> torch.Tensor:
        rows = torch.randint(0, EOS, (n, self.seq_len + 1), generator=self.gen)
        if self.doc_len:
            ends = torch.rand(rows.shape, generator=self.gen) < 1.0 / self.doc_len
            rows[ends] = EOS
        return rows


# `--perf KEY=VALUE` overrides of our engines' PerfConfig (apply_variants sets them)
PERF_OVERRIDES: dict[str, Any] = {}


def _model_cfg(size: str, seq: int):
    cfg = gpu_config(tempfile.mkdtemp(prefix="bench-"), size="350m")
    for k, v in SIZES[size].items():
        setattr(cfg.model, k, v)
    for k, v in PERF_OVERRIDES.items():
        setattr(cfg.perf, k, v)
    cfg.model.max_position_embeddings = max(seq, 2048)
    cfg.data.seq_len = seq
    return cfg


def _clean() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()


class _Clock(BaseSink):
    """Wall time and loss at logged steps (the loop has read loss/grad-norm from the GPU before calling
    this); `hooks[step]()` runs at that logged step (the profiler's start and stop)."""

    def __init__(self, hooks: dict[int, Callable[[], None]] | None = None) -> None:
        self.t: dict[int, float] = {}
        self.loss: dict[int, float] = {}
        self.hooks = hooks or {}

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics:
            self.t[step], self.loss[step] = time.perf_counter(), metrics["loss"]
            if step in self.hooks:
                self.hooks[step]()


def run_ours(
    size: str, seq: int, rows: int, micro: int, warmup: int, steps: int, *, doc_mask: bool = False,
    float8: bool = False, data: Any = None, log_every: int | None = None, hooks: dict | None = None,
    compile_mode: str | None = None, compile_scope: str = "block",
) -> dict:  # fmt: skip
    """Our engine; `log_every` (default: `warmup`) also sets how often the loss curve is read;
    `compile_mode` / `compile_scope`: torch.compile's mode and what it compiles (perf.compile_*)."""
    cfg = _model_cfg(size, seq)
    cfg.data.doc_mask = doc_mask
    cfg.perf.float8 = float8
    cfg.perf.compile_mode, cfg.perf.compile_scope = compile_mode, compile_scope
    s = cfg.schedule
    s.micro_batch_size, s.grad_accum_steps = micro, rows // micro
    s.max_steps, s.log_every, s.eval_every, s.checkpoint_every = warmup + steps, log_every or warmup, 0, 0
    s.final_checkpoint = False
    env = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cuda", 0))
    torch.manual_seed(0)
    attn = "flex_attention" if doc_mask else "sdpa"
    model = init_model(cfg.model, _Vocab(), attn).to(env.device)
    n = count_params(model)
    clock = _Clock(hooks)
    if data is None:
        data = RandomTokens(seq, doc_len=512 if doc_mask else None)
    t0 = time.perf_counter()
    train_loop(cfg, model, data, env, [clock], n, eos_id=EOS if doc_mask else None)
    last = warmup + steps
    dt = clock.t[last] - clock.t[warmup] if warmup in clock.t else clock.t[last] - t0
    fp8 = sum(type(m).__name__ == "Float8Linear" for m in model.modules())
    out = {"n": n, "tps": steps * rows * seq / dt, "wall": time.perf_counter() - t0, "loss": clock.loss[last]}
    return {**out, "curve": clock.loss, **({"float8_linears": fp8} if float8 else {})}


def _hf_config(size: str, seq: int):
    from transformers import LlamaConfig

    mc = _model_cfg(size, seq).model
    return LlamaConfig(
        vocab_size=VOCAB, hidden_size=mc.hidden_size, intermediate_size=mc.intermediate_size,
        num_hidden_layers=mc.num_hidden_layers, num_attention_heads=mc.num_attention_heads,
        num_key_value_heads=mc.num_key_value_heads, max_position_embeddings=mc.max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=EOS,
    )  # fmt: skip


@contextlib.contextmanager
def liger_patched():
    """Liger's kernels patched into transformers' Llama for the duration (it patches module globals and
    `LlamaForCausalLM.forward`); restored on exit so the other engines stay stock."""
    from liger_kernel.transformers import apply_liger_kernel_to_llama
    from transformers.models.llama import modeling_llama

    names = ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP")
    saved = {k: getattr(modeling_llama, k) for k in names}
    had_forward = "forward" in vars(modeling_llama.LlamaForCausalLM)
    forward = modeling_llama.LlamaForCausalLM.forward
    apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, fused_linear_cross_entropy=True)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(modeling_llama, k, v)
        if had_forward:
            modeling_llama.LlamaForCausalLM.forward = forward


def run_hf(size: str, seq: int, rows: int, micro: int, warmup: int, steps: int, liger: bool = False) -> dict:
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    ctx = liger_patched() if liger else contextlib.nullcontext()
    with ctx:
        torch.manual_seed(0)
        model = LlamaForCausalLM(_hf_config(size, seq))
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
        if liger:
            info["liger"] = type(model.model.norm).__name__
        del trainer, model
    return {"n": n, "tps": steps * rows * seq / dt, "wall": time.perf_counter() - t0, **info}


# Packages torchtitan's package imports for its trainer (data loading, logging) that its model never uses.
_TITAN_TRAINER_ONLY = ("datasets", "tensorboard", "wandb")


class _Placeholder(type):
    """Any attribute of a stubbed module: a class (so it can be subclassed or used in annotations)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves placeholder modules for the named packages (and their submodules)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == n or fullname.startswith(n + ".") for n in self.names):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StubModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # type: ignore[attr-defined]


def import_torchtitan_llama() -> tuple[Any, Any, list[str]]:
    """torchtitan's Llama 3 (`Transformer`, `TransformerModelArgs`) and the list of trainer-only packages
    stubbed to import it (those of _TITAN_TRAINER_ONLY that are not installed; torch.utils.tensorboard
    with tensorboard; its MoE Triton kernels where triton is absent, i.e. on a CPU-only torch)."""
    stubs = [n for n in _TITAN_TRAINER_ONLY if importlib.util.find_spec(n) is None]
    if "tensorboard" in stubs:
        stubs.append("torch.utils.tensorboard")
    if importlib.util.find_spec("triton") is None:
        stubs.append("torchtitan.models.moe.kernels")
    finder = _StubFinder(stubs)
    sys.meta_path.insert(0, finder)
    try:
        from torchtitan.models.llama3 import Transformer, TransformerModelArgs
    finally:
        sys.meta_path.remove(finder)
    return Transformer, TransformerModelArgs, stubs


def titan_model(size: str, seq: int) -> tuple[torch.nn.Module, list[str]]:
    """torchtitan's Llama at our dims (on the current default device): FFN width = our intermediate_size
    (through its multiple_of / ffn_dim_multiplier rule), output head tied to the embeddings, its own
    init_weights. Returns the model and the stubbed packages."""
    Transformer, Args, stubs = import_torchtitan_llama()
    mc = _model_cfg(size, seq).model
    ffn = mc.intermediate_size
    # torchtitan's FeedForward: int(2 * 4 * dim / 3), times ffn_dim_multiplier, rounded up to multiple_of
    base = int(2 * 4 * mc.hidden_size / 3)
    args = Args(
        dim=mc.hidden_size,
        n_layers=mc.num_hidden_layers,
        n_heads=mc.num_attention_heads,
        n_kv_heads=mc.num_key_value_heads,
        vocab_size=VOCAB,
        multiple_of=ffn,
        ffn_dim_multiplier=ffn / base,
        rope_theta=mc.rope_theta,
        max_seq_len=seq,
    )
    model = Transformer(args)
    got = model.layers["0"].feed_forward.w1.out_features
    if got != ffn:
        raise ValueError(f"torchtitan FFN width {got} != {ffn}")
    with torch.no_grad():  # as torchtitan's trainer calls it
        model.init_weights()
    # tied as our models and HF's, keeping torchtitan's output-head init (std dim^-0.5) for the shared matrix
    model.tok_embeddings.weight = model.output.weight
    return model, stubs


def run_titan(size: str, seq: int, rows: int, micro: int, warmup: int, steps: int) -> dict:
    dev = torch.device("cuda", 0)
    torch.manual_seed(0)
    with torch.device(dev):
        model, stubs = titan_model(size, seq)
    n = count_params(model, non_embedding=False) - model.tok_embeddings.weight.numel()
    for layer_id, block in model.layers.named_children():  # torchtitan's apply_compile
        model.layers.register_module(layer_id, torch.compile(block, fullgraph=True))

    def ce(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # torchtitan's cross_entropy_loss
        return torch.nn.functional.cross_entropy(
            pred.flatten(0, 1).float(), labels.flatten(0, 1), reduction="sum"
        )

    loss_fn = torch.compile(ce)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    data = RandomTokens(seq)
    accum = rows // micro
    torch.set_float32_matmul_precision("high")
    model.train()
    t0 = time.perf_counter()
    marks: dict[int, float] = {}
    for step in range(1, warmup + steps + 1):
        for _ in range(accum):
            b = {k: v.pin_memory().to(dev, non_blocking=True) for k, v in data.next_batch(micro).items()}
            with torch.autocast("cuda", dtype=torch.bfloat16):
                pred = model(b["input_ids"])
                loss = loss_fn(pred, b["labels"]) / (micro * seq * accum)
            del pred
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step in (warmup, warmup + steps):
            torch.cuda.synchronize()
            marks[step] = time.perf_counter()
    dt = marks[warmup + steps] - marks[warmup]
    import torchtitan

    info = {
        "torchtitan": getattr(torchtitan, "__version__", "?"),
        "stubbed": stubs,
        "loss": float(loss) * accum,
    }
    del model, opt
    return {"n": n, "tps": steps * rows * seq / dt, "wall": time.perf_counter() - t0, **info}


def measure(
    engine: str, size: str, seq: int, rows: int, warmup: int, steps: int,
    compile_mode: str | None = None, compile_scope: str = "block", max_micro: int | None = None,
) -> dict:  # fmt: skip
    """Run one engine, halving the micro-batch on out-of-memory (`compile_*`: ours only). The micro-batch
    starts at all `rows` of a step, or at `max_micro` rows (the rest by gradient accumulation)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {ENGINES}")
    micro = min(rows, max_micro or rows)
    if rows % micro:
        raise ValueError(f"a micro-batch of {micro} rows does not divide the step's {rows} rows")
    while True:
        _clean()
        try:
            if engine in ("hf", "hf+liger"):
                r = run_hf(size, seq, rows, micro, warmup, steps, liger=engine == "hf+liger")
            elif engine == "torchtitan":
                r = run_titan(size, seq, rows, micro, warmup, steps)
            else:
                r = run_ours(size, seq, rows, micro, warmup, steps, doc_mask=engine == "ours+docmask",
                             float8=engine == "ours+fp8", compile_mode=compile_mode,
                             compile_scope=compile_scope)  # fmt: skip
                r.pop("curve")
            r.update(micro=micro, peak_gib=torch.cuda.max_memory_allocated() / 2**30)
            return r
        except torch.cuda.OutOfMemoryError:
            if micro == 1:
                raise
            micro //= 2
            print(f"  {engine} {size} seq {seq}: out of memory, micro-batch -> {micro}", flush=True)


def parse_perf(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value) for one PerfConfig field, checked as a config file's `perf:` would be."""
    import yaml

    from training.config import config_from_dict

    key, sep, raw = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--perf {item!r}: expected KEY=VALUE")
    value = yaml.safe_load(raw)
    try:
        config_from_dict({"output_dir": "x", "perf": {key: value}})
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"--perf {item!r}: {e}") from None
    return key, value


def parse_config(conf: str) -> tuple[str, int]:
    """`SIZE:SEQ` -> (size, seq); the size must be one of SIZES."""
    size, _, seq = conf.partition(":")
    if size not in SIZES or not seq.isdigit():
        raise argparse.ArgumentTypeError(f"config {conf!r}: expected SIZE:SEQ with SIZE in {sorted(SIZES)}")
    return size, int(seq)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", type=parse_config, default=[("350m", 1024)],
                   help="SIZE:SEQ, sizes: " + ",".join(SIZES))  # fmt: skip
    p.add_argument("--engines", nargs="*", choices=ENGINES, default=DEFAULT_ENGINES,
                   help="engines of the table (none: only the profile / parity runs)")  # fmt: skip
    p.add_argument("--doc-mask", nargs="*", type=parse_config, default=[],
                   help="SIZE:SEQ also run ours with document masking")  # fmt: skip
    p.add_argument(
        "--tokens-per-step", nargs="+", type=int, default=[16384], help="global batch(es) in tokens"
    )
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode of our engines (e.g. reduce-overhead: CUDA graphs); default mode if unset",
    )
    p.add_argument("--compile-scope", choices=["block", "decoder"], default="block",
                   help="our engines compile each decoder block (default) or the whole decoder as one graph")  # fmt: skip
    p.add_argument("--max-micro-batch", type=int, metavar="ROWS",
                   help="every engine's micro-batch at most ROWS (gradient accumulation for the rest of a "
                   "step; default: the whole step in one micro-batch where memory allows)")  # fmt: skip
    p.add_argument("--perf", action="append", default=[], type=parse_perf, metavar="KEY=VALUE",
                   help="our engines' perf.KEY (training.config.PerfConfig) set to VALUE (YAML), e.g. "
                   "loss_chunk_tokens=16384; repeatable")  # fmt: skip
    p.add_argument("--clip-outside-optimizer", action="store_true",
                   help="ours clips with clip_grad_norm_ (grads rescaled in place) as before 2026-12-05, "
                   "instead of handing the factor to the fused AdamW")  # fmt: skip
    p.add_argument("--float8-all-linears", action="store_true",
                   help="ours+fp8 converts every eligible linear, small ones too, as before 2026-12-05 "
                   "(default: torchao's size rule leaves in <= 4096 and out <= 1024 in bf16)")  # fmt: skip
    p.add_argument("--out", help="write the table here (and JSON rows beside it)")
    p.add_argument("--profile-out", help="profile ours at the first config; the breakdown (Markdown) here")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--profile-engine", default="ours", choices=[e for e in ENGINES if e.startswith("ours")],
                   help="which of our engines the profile runs")  # fmt: skip
    p.add_argument("--trace-out", help="also keep the profiler's Chrome trace here (gzipped)")
    p.add_argument("--parity-steps", type=int, default=0, help="bf16 vs float8 loss parity over N steps")
    p.add_argument("--parity-config", type=parse_config, help="SIZE:SEQ of the parity runs (default: first)")
    p.add_argument("--parity-out", default="float8_parity", help="base path of the parity .json/.png")
    p.add_argument(
        "--aux-tokens", type=int, help="tokens/step of the profile and parity runs (default: the first)"
    )
    args = p.parse_args(argv)
    args.aux_tokens = args.aux_tokens or args.tokens_per_step[0]
    for t in [*args.tokens_per_step, args.aux_tokens]:
        for size, seq in [*args.configs, *([args.parity_config] if args.parity_config else [])]:
            if t % seq:
                p.error(f"--tokens-per-step {t} is not a multiple of seq {seq} ({size})")
            if args.max_micro_batch is not None and (
                args.max_micro_batch < 1 or (t // seq) % min(args.max_micro_batch, t // seq)
            ):
                p.error(
                    f"--max-micro-batch {args.max_micro_batch} does not divide {t // seq} rows ({t} tokens)"
                )
    return args


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_table(results: list[dict[str, Any]], peak: float) -> list[str]:
    """Markdown rows, one per run in order; ratios to `hf` and `torchtitan` at the same size, seq and
    tokens/step where both ran (so a row's ratio to a later run appears once that run is done)."""
    key = lambda r: (r["size"], r["seq"], r["tokens_per_step"])  # noqa: E731
    ref = {(key(r), r["engine"]): r["tps"] for r in results if "tps" in r}
    lines = [
        "| model | seq | tokens/step | engine | micro x accum | tokens/s | MFU | peak GiB | vs HF | vs torchtitan |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lead = f"| {r['size']} | {r['seq']} | {r['tokens_per_step']} | {r['engine']} |"
        if "error" in r:
            lines.append(f"{lead} failed: {_cell(r['error'])} | | | | | |")
            continue
        ratios = []
        for peer in ("hf", "torchtitan"):
            v = ref.get((key(r), peer))
            ratios.append(f"{r['tps'] / v:.2f}x" if v else "-")
        rows = r["tokens_per_step"] // r["seq"]
        lines.append(
            f"| {r['size']} ({r['n'] / 1e6:.0f}M non-emb) | {r['seq']} | {r['tokens_per_step']} | {r['engine']} "
            f"| {r['micro']} x {rows // r['micro']} | {r['tps']:,.0f} | {6 * r['n'] * r['tps'] / peak:.1%} "
            f"| {r['peak_gib']:.1f} | {ratios[0]} | {ratios[1]} |"
        )
    return lines


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"torch {torch.__version__}"]
    for pkg in ("transformers", "liger-kernel", "torchao", "torchtitan"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} absent")
    return ", ".join(out)


def profile_ours(
    size: str, seq: int, rows: int, warmup: int, steps: int, out: str, engine: str = "ours",
    trace_out: str | None = None, compile_mode: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Profile `steps` steps of `engine` (ours or a variant) after `warmup` (CUDA activity); write the
    breakdown (Markdown) to `out` and its numbers beside it (.json). The trace (tens of MB) stays in a temp
    dir, or goes gzipped to `trace_out`."""
    from bench.kernel_breakdown import breakdown_file, idle_by_phase, render, render_idle_by_phase

    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                              torch.profiler.ProfilerActivity.CUDA])  # fmt: skip
    window: dict[str, float] = {}

    def start() -> None:
        torch.cuda.synchronize()
        prof.start()
        window["t0"] = time.perf_counter()

    def stop() -> None:
        torch.cuda.synchronize()
        window["wall"] = time.perf_counter() - window["t0"]
        prof.stop()

    _clean()
    # logged (one GPU read) at `warmup` and at the end only: log_every = warmup and steps <= warmup
    warmup, steps = max(warmup, 1), min(steps, max(warmup, 1))
    hooks = {warmup: start, warmup + steps: stop}
    r = run_ours(size, seq, rows, rows, warmup, steps, log_every=warmup, hooks=hooks, float8=engine == "ours+fp8",
                 doc_mask=engine == "ours+docmask", compile_mode=compile_mode)  # fmt: skip
    trace = Path(tempfile.mkdtemp(prefix="bench-prof-")) / "trace.json"
    prof.export_chrome_trace(str(trace))
    if trace_out:
        import gzip
        import shutil

        with trace.open("rb") as src, gzip.open(trace_out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    result = breakdown_file(trace, window["wall"])
    # where the GPU waits for the host, by the training loop's record_function phases (train.*)
    phases = idle_by_phase(json.loads(trace.read_text()), prefixes=("train.",))
    result.update(size=size, seq=seq, tokens_per_step=rows * seq, steps=steps, trace=str(trace),
                  tokens_per_s_under_profiler=steps * rows * seq / window["wall"], tokens_per_s_run=r["tps"],
                  idle_by_phase=phases)  # fmt: skip
    title = (f"Profile of {engine}: {size}, seq {seq}, {rows * seq} tokens/step, {steps} steps after {warmup} "
             f"warm-up, {torch.cuda.get_device_name(0)}, {_versions()}")  # fmt: skip
    Path(out).write_text(render(result, title) + "\n" + render_idle_by_phase(phases, unit="ms"))
    Path(out).with_suffix(".json").write_text(json.dumps(result, indent=1))
    return result


def parity(size: str, seq: int, rows: int, steps: int, out_base: str) -> dict[str, Any]:
    """Ours bf16 and ours+fp8 from the same init on the same motif tokens for `steps` steps (loss read
    every step); writes the curves and their relative difference (bench/float8_parity.py)."""
    from bench.float8_parity import MotifTokens, write_parity

    curves, meta = {}, {}
    for name, fp8 in (("bf16", False), ("float8", True)):
        _clean()
        data = MotifTokens(seq, seed=0)
        r = run_ours(size, seq, rows, rows, 0, steps, float8=fp8, data=data, log_every=1)
        curves[name] = r["curve"]
        meta[f"{name}_wall_s"] = r["wall"]  # compile and a GPU read every step included: not a speed
        meta["entropy_bound_nats"] = data.entropy_bound_nats()
    meta.update(size=size, seq=seq, tokens_per_step=rows * seq, steps=steps, versions=_versions(),
                title=f"ours {size} seq {seq}: float8 vs bf16")  # fmt: skip
    return write_parity(out_base, curves, meta)


def apply_variants(args: argparse.Namespace) -> str:
    """Switch our engine back to an earlier way for a comparison (the process's training modules are
    patched: one variant per invocation); returns the table head's words for what ours runs."""
    from training import loop, parallel

    PERF_OVERRIDES.clear()
    PERF_OVERRIDES.update(args.perf)
    if args.clip_outside_optimizer:
        clip = loop.clip_gradients
        loop.clip_gradients = lambda model, opt, max_norm, in_optimizer: clip(model, opt, max_norm, False)
    if args.float8_all_linears:
        parallel.float8_module_filter = functools.partial(parallel.float8_module_filter, small_too=True)
    return (
        f"clipping {'outside' if args.clip_outside_optimizer else 'inside'} the fused AdamW, float8 on "
        + ("every eligible linear" if args.float8_all_linears else "linears above torchao's size rule")
        + "".join(f", perf.{k}={v}" for k, v in args.perf)
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = apply_variants(args)
    dev = torch.device("cuda", 0)
    peak = peak_flops(dev, None)
    head = (f"# train_throughput {datetime.date.today()} on {torch.cuda.get_device_name(dev)}; {_versions()}; "
            f"{args.warmup} warm-up + {args.steps} timed steps; MFU vs {peak / 1e12:.0f} TFLOP/s dense bf16; ours: "
            f"compile scope {args.compile_scope}, mode {args.compile_mode or 'default'}, {variants}")  # fmt: skip
    print(head, flush=True)
    jobs = [
        (size, seq, t, e) for t in args.tokens_per_step for size, seq in args.configs for e in args.engines
    ]
    jobs += [(size, seq, t, "ours+docmask") for t in args.tokens_per_step for size, seq in args.doc_mask]
    results: list[dict[str, Any]] = []

    def write() -> None:
        if args.out:
            lines = [head, "", *render_table(results, peak)]
            Path(args.out).write_text("\n".join(lines) + "\n")
            Path(args.out).with_suffix(".json").write_text(
                json.dumps({"head": head, "rows": results}, indent=1)
            )

    for size, seq, tokens, engine in jobs:
        row: dict[str, Any] = {"size": size, "seq": seq, "tokens_per_step": tokens, "engine": engine}
        try:
            compile_kw = {"compile_mode": args.compile_mode, "compile_scope": args.compile_scope,
                          "max_micro": args.max_micro_batch}  # fmt: skip
            r = measure(engine, size, seq, tokens // seq, args.warmup, args.steps, **compile_kw)
            row.update(r, mfu=6 * r["n"] * r["tps"] / peak)
        except Exception as e:  # noqa: BLE001 - one failed run must not lose the others' rows
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        results.append(row)
        print(render_table([row], peak)[-1], f"({row.get('wall', 0):.0f} s)", flush=True)
        write()
    if results:
        print("\n".join(render_table(results, peak)), flush=True)
    size, seq = args.configs[0]
    if args.profile_out:
        try:
            p = profile_ours(size, seq, args.aux_tokens // seq, args.warmup, args.profile_steps,
                             args.profile_out, args.profile_engine, args.trace_out, args.compile_mode)  # fmt: skip
            print(Path(args.profile_out).read_text(), flush=True)
            print(f"GPU idle {p['idle_fraction']:.1%}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"profile failed: {type(e).__name__}: {e}", flush=True)
    if args.parity_steps:
        psize, pseq = args.parity_config or args.configs[0]
        try:
            res = parity(psize, pseq, args.aux_tokens // pseq, args.parity_steps, args.parity_out)
            d = res["relative_difference"]
            final = {k: list(c.values())[-1] for k, c in res["curves"].items()}
            print(f"float8 parity {psize}:{pseq} over {args.parity_steps} steps: final loss {final}, rel. diff "
                  f"{d['final']:.2%}, last-{d['tail']} mean {d['tail_mean']:.2%} (within 1%: {res['within_1pct']}; "
                  f"entropy bound {res['entropy_bound_nats']:.3f} nats)", flush=True)  # fmt: skip
        except Exception as e:  # noqa: BLE001
            print(f"parity failed: {type(e).__name__}: {e}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
