"""Throughput of evaluation decoding: our engine vs batched ``generate`` vs the one-at-a-time loop.

One invocation, one GPU, one model (a ~1.2B Llama, Llama-3.2-1B's shape, random weights from
config, bf16 -- nothing from a hub), the 1,390 non-live BFCL prompts rendered with our chat
template, 64 new tokens each (greedy, stop at EOS / ``<|im_end|>``):

* ``engine``: :class:`evaluation.generation.engine.Engine` (static KV cache, continuous batching, CUDA graphs);
* ``generate_b128``: ``model.generate`` in batches of 128, left padding, prompts sorted by length;
* ``loop``: ``model.generate`` one prompt at a time on a sample, extrapolated to the set.

Prints items/s, new tokens/s and ratios, and the token agreement of the engine's greedy outputs
with ``generate``'s (all items in bf16; a sample in fp32, where they should match exactly).
Prompts come from ``bench/data/bfcl/BFCL_v4_<category>.json`` (the question files of the
``bfcl-eval`` wheel, 1.4 MB); when absent, synthetic prompts with the same length distribution
are used. The tokenizer is a byte-level BPE trained here on the prompts (forge.corpus.tokenizer).

    python bench/eval_throughput.py [--device cuda] [--loop-sample 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.bfcl import AST_KINDS, BfclItem, question_file  # noqa: E402
from contracts.bfcl import CATEGORIES as BFCL_CATEGORIES  # noqa: E402
from evaluation.bfcl.data import prompt_functions  # noqa: E402
from evaluation.generation.engine import Engine, EngineConfig  # noqa: E402
from evaluation.generation.generate import hf_generate_ids, stop_token_ids  # noqa: E402

DATA = ROOT / "bench" / "data" / "bfcl"
# BFCL's non-live single-turn prompts: the AST categories and irrelevance.
CATEGORIES = tuple(
    c.name
    for c in BFCL_CATEGORIES
    if c.benchmark == "bfcl" and not c.live and (c.kind in AST_KINDS or c.kind == "irrelevance")
)
LLAMA_1B = dict(  # Llama-3.2-1B's shape: 1.24B parameters with tied embeddings
    vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
    rope_theta=500000.0, tie_word_embeddings=True,
)  # fmt: skip


TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def load_conversations(data_dir: Path = DATA) -> tuple[list[dict[str, Any]], str]:
    """(conversations {messages, tools}, source) for the 1,390 non-live prompts, or synthetic ones."""
    convs = []
    for category in CATEGORIES:
        path = question_file(data_dir, category)
        if not path.exists():
            return synthetic_conversations(), "synthetic (bench/data/bfcl missing)"
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                item = BfclItem(row["id"], category, row["question"], row["function"])
                convs.append({"messages": item.messages, "tools": prompt_functions(item.functions, category)})
    return convs, f"BFCL non-live ({len(convs)} items)"


def synthetic_conversations(n: int = 1390, seed: int = 0) -> list[dict[str, Any]]:
    """Stand-ins with BFCL's rough shape: 1-4 tool documents of ~600 characters and a short question."""
    rng = random.Random(seed)
    words = "city date amount user query limit offset format units language currency name".split()
    convs = []
    for i in range(n):
        tools = []
        for t in range(rng.randint(1, 4)):
            props = {
                w: {"type": "string", "description": " ".join(rng.choices(words, k=8))}
                for w in rng.sample(words, 4)
            }
            tools.append({"name": f"tool_{i}_{t}", "description": " ".join(rng.choices(words, k=30)),
                          "parameters": {"type": "dict", "properties": props, "required": list(props)[:2]}})  # fmt: skip
        convs.append({"messages": [{"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(8, 60)))}],
                      "tools": tools})  # fmt: skip
    return convs


def build_tokenizer(convs: list[dict[str, Any]], out_dir: Path, vocab_size: int) -> Any:
    from transformers import AutoTokenizer

    from forge.corpus.tokenizer import train_tokenizer

    texts = [m["content"] for c in convs for m in c["messages"]] + [
        json.dumps(t) for c in convs for t in c["tools"]
    ]
    train_tokenizer(texts, out_dir, vocab_size)
    return AutoTokenizer.from_pretrained(out_dir)


def encode(tokenizer: Any, convs: list[dict[str, Any]]) -> list[list[int]]:
    from contracts.chat import apply_chat_format

    texts = [
        apply_chat_format(tokenizer, c["messages"], c["tools"], add_generation_prompt=True) for c in convs
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def build_model(device: str, dtype: torch.dtype, seed: int = 0, tiny: bool = False) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    shape = {**LLAMA_1B, **(TINY if tiny else {})}
    config = LlamaConfig(**shape, attn_implementation="sdpa")
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def timed(fn: Any, device: str) -> tuple[Any, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def agreement(a: list[list[int]], b: list[list[int]]) -> dict[str, float]:
    """Positionwise token agreement over the longer of each pair, plus whole-sequence equality."""
    same = total = prefix = 0
    for x, y in zip(a, b, strict=True):
        n = max(len(x), len(y))
        same += sum(1 for i in range(min(len(x), len(y))) if x[i] == y[i])
        total += n
        k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        prefix += k
    return {
        "token_agreement": same / max(total, 1),
        "prefix_agreement": prefix / max(total, 1),
        "identical_sequences": sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1),
    }


def run(args: argparse.Namespace) -> str:
    device, max_new = args.device, args.max_new_tokens
    convs, source = load_conversations()
    if args.limit:
        convs = convs[: args.limit]
        source += f", first {len(convs)}"
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(convs, Path(tmp) / "tok", args.vocab_size)
    prompts = encode(tokenizer, convs)
    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id
    model = build_model(device, torch.bfloat16, tiny=args.tiny)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = sorted(len(p) for p in prompts)
    lines = [
        f"# eval throughput -- {time.strftime('%Y-%m-%d')} -- "
        f"{torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}",
        f"torch {torch.__version__}, transformers {__import__('transformers').__version__}",
        f"model: Llama {n_params / 1e9:.2f}B params (random init from config), bf16, sdpa",
        f"prompts: {source}; tokens/prompt mean {sum(lengths) / len(lengths):.0f}, "
        f"median {lengths[len(lengths) // 2]}, max {lengths[-1]} (BPE {len(tokenizer)} ids trained on the prompts)",
        f"max_new_tokens {max_new}, greedy, stops {stops}",
        "",
    ]
    print("\n".join(lines), flush=True)
    results: dict[str, dict[str, float]] = {}

    def record(name: str, outs: list[list[int]], seconds: float, n_items: int, note: str = "") -> None:
        new = sum(len(o) for o in outs)
        results[name] = {
            "items_s": n_items / seconds,
            "tok_s": new / seconds,
            "seconds": seconds,
            "note": note,
        }
        print(
            f"{name}: {seconds:.2f}s  {n_items / seconds:.2f} items/s  {new / seconds:.0f} tok/s {note}",
            flush=True,
        )

    hf_generate_ids(model, prompts[:2], stops, pad, 4, 2)  # warm-up (cuBLAS handles, allocator)
    engine_outs: dict[str, list[list[int]]] = {}
    for slots in args.slots:
        engine = Engine(model, stops, config=EngineConfig(slots=slots, sync_every=args.sync_every))
        outs, sec = timed(lambda engine=engine: engine.generate_ids(prompts, max_new), device)
        engine_outs[f"engine_s{slots}"] = outs
        record(f"engine_s{slots}", outs, sec, len(prompts), json.dumps(engine.stats))
    gen_outs, sec = timed(lambda: hf_generate_ids(model, prompts, stops, pad, max_new, 128), device)
    record("generate_b128", gen_outs, sec, len(prompts), "(whole set)")
    sample = random.Random(1).sample(range(len(prompts)), args.loop_sample)
    loop_outs, sec = timed(
        lambda: [hf_generate_ids(model, [prompts[i]], stops, pad, max_new, 1)[0] for i in sample], device
    )
    record("loop_b1", loop_outs, sec, len(sample), f"(sample of {len(sample)}, extrapolated)")

    best = max((k for k in results if k.startswith("engine")), key=lambda k: results[k]["items_s"])
    lines += [
        "| method | items/s | new tokens/s | s for the set | vs generate_b128 |",
        "|---|---|---|---|---|",
    ]
    base = results["generate_b128"]["items_s"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['items_s']:.2f} | {r['tok_s']:.0f} | {len(prompts) / r['items_s']:.1f} | "
                     f"{r['items_s'] / base:.2f}x |")  # fmt: skip
    lines.append("")
    lines.append(f"best engine ({best}) vs generate_b128: {results[best]['items_s'] / base:.2f}x; "
                 f"vs loop: {results[best]['items_s'] / results['loop_b1']['items_s']:.1f}x")  # fmt: skip
    for name, outs in engine_outs.items():
        lines.append(
            f"bf16 agreement {name} vs generate_b128 (all {len(prompts)}): {json.dumps(agreement(outs, gen_outs))}"
        )
    lines.append(f"bf16 agreement loop_b1 vs generate_b128 (sample {len(sample)}): "
                 f"{json.dumps(agreement(loop_outs, [gen_outs[i] for i in sample]))}")  # fmt: skip
    # fp32: batch composition no longer changes the rounding enough to flip a greedy choice.
    model.float()
    fp32 = random.Random(2).sample(range(len(prompts)), args.fp32_sample)
    ref = hf_generate_ids(model, [prompts[i] for i in fp32], stops, pad, max_new, len(fp32))
    got = Engine(model, stops, config=EngineConfig(slots=16)).generate_ids(
        [prompts[i] for i in fp32], max_new
    )
    lines.append(f"fp32 agreement engine vs generate (sample {len(fp32)}): {json.dumps(agreement(got, ref))}")
    if device == "cuda":
        lines.append(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    text = "\n".join(lines) + "\n"
    print("\n".join(lines[-(len(engine_outs) + 3) :]), flush=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--sync-every", type=int, default=8)
    parser.add_argument("--loop-sample", type=int, default=16)
    parser.add_argument("--fp32-sample", type=int, default=24)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model (smoke test on CPU)")
    parser.add_argument("--limit", type=int, help="first N prompts only (smoke test)")
    args = parser.parse_args()
    text = run(args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
