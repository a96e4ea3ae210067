"""The engine's decode attention kernels side by side (``EngineConfig.decode_attention``), one table.

One decode step's attention for every slot: one query per head (Llama-3.2-1B's shape: 8 K/V heads,
4 query heads each, head dim 64), bf16, over a static cache of which each slot holds a different
length (uniform between a quarter of the attended length and all of it), through each kernel of
:data:`evaluation.generation.kernels.DECODE_KERNELS`: ``sdpa`` (the backend's choice, with the
additive mask) against ``matmul`` (two batched GEMMs, fp32 scores) and ``varlen`` (the flash
kernel's variable-length form, told each slot's length). Two bandwidth columns: ``GB/s K+V``, the
bytes of the whole attended K/V (what ``sdpa`` and ``matmul`` read) over the time, and ``GB/s live``,
the bytes of the positions the slots hold (what ``varlen`` reads), the same for every kernel. The
first kernel named is the baseline of the ratio column; outputs are compared with it (max abs diff).

    python bench/decode_attention.py [--slots 64 256] [--attend 2048 8192] [--out table.txt]
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.generation.kernels import DECODE_KERNELS, decode_mask, decode_matmul, decode_varlen  # noqa: E402


def kernel_fn(name: str):
    """``fn(q [S, H, G, D], k, v [S, H, A, D], additive mask, positions [S]) -> [S, H, G, D]``."""
    if name == "sdpa":
        return lambda q, k, v, m, p: F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    if name == "varlen":
        return lambda q, k, v, m, p: decode_varlen(q.flatten(1, 2), k, v, p, k.shape[2], None).view_as(q)
    return lambda q, k, v, m, p: decode_matmul(q, k, v, m, None)


def time_call(fn, device: str, iters: int) -> float:
    """Seconds per call (CUDA events on the GPU, wall clock on the CPU), after two warm-up calls."""
    import time

    for _ in range(2):
        fn()
    if device != "cuda":
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - start) / iters
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / 1000 / iters


def run(args: argparse.Namespace) -> list[str]:
    device, dtype = args.device, (torch.bfloat16 if args.device == "cuda" else torch.float32)
    heads, groups, dim = args.kv_heads, args.groups, args.head_dim
    kernels = args.kernels
    lines = [
        f"# decode attention kernels — {date.today()} — {platform.node()} — {device} "
        f"({torch.cuda.get_device_name() if device == 'cuda' else platform.machine()}); torch {torch.__version__}; "
        f"{dtype}; {heads} K/V heads x {groups} query heads, head dim {dim}; {args.iters} calls each; "
        f"baseline: {kernels[0]}",
        f"{'slots':>6}{'attend':>8}{'kernel':>9}{'us/call':>10}{'GB/s K+V':>10}{'GB/s live':>11}"
        f"{'vs ' + kernels[0]:>10}{'max |diff|':>12}",
    ]
    gen = torch.Generator(device="cpu").manual_seed(0)
    for slots in args.slots:
        for attend in args.attend:
            q = torch.randn(slots, heads, groups, dim, generator=gen).to(device, dtype)
            k = torch.randn(slots, heads, attend, dim, generator=gen).to(device, dtype)
            v = torch.randn(slots, heads, attend, dim, generator=gen).to(device, dtype)
            pos = torch.randint(attend // 4, attend, (slots,), generator=gen).to(device)
            mask = decode_mask(pos, attend, dtype)
            kv_bytes = 2 * k.numel() * k.element_size()
            live_bytes = kv_bytes * float((pos + 1).sum()) / (slots * attend)
            base_t = base_out = None
            for name in kernels:
                fn = kernel_fn(name)
                with torch.inference_mode():
                    seconds = time_call(lambda fn=fn, a=(q, k, v, mask, pos): fn(*a), device, args.iters)
                    out = fn(q, k, v, mask, pos).float()
                if base_t is None:
                    base_t, base_out = seconds, out
                diff = (out - base_out).abs().max().item()
                lines.append(
                    f"{slots:>6}{attend:>8}{name:>9}{seconds * 1e6:>10.1f}{kv_bytes / seconds / 1e9:>10.0f}"
                    f"{live_bytes / seconds / 1e9:>11.0f}"
                    f"{base_t / seconds:>9.2f}x{diff:>12.2e}"
                )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--slots", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--attend", type=int, nargs="+", default=[2048, 8192])
    per_slot = [
        k for k in DECODE_KERNELS if k != "cascade"
    ]  # cascade needs shared prefixes: the multi-turn bench
    ap.add_argument("--kernels", nargs="+", default=per_slot, choices=per_slot)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = "\n".join(run(args))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
