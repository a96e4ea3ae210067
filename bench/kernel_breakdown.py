"""Where the GPU time of a training step goes: kernel names sorted into categories, from a torch profiler trace.

`categorize_kernel` is the pure rule (tested on CPU); `breakdown` sums the device events of a Chrome trace
(what `torch.profiler.profile.export_chrome_trace` writes) by category, lists the top kernels, and compares
the union of busy intervals with the host-measured wall time of the profiled window: the rest is GPU idle
(launch gaps, host syncs, data loading on the critical path).
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

CATEGORIES = ("matmul", "attention", "loss", "optimizer", "norm/elementwise/triton", "comm/memcpy", "other")

# Checked in this order: a fused Triton kernel that contains a matmul template or the loss is named by what
# dominates it, not by the "triton" prefix every Inductor kernel shares.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("comm/memcpy", ("nccl", "memcpy", "memset", "copy_device_to", "copy_host_to", "dtoh", "htod", "dtod")),
    ("optimizer", ("adam", "multi_tensor_apply", "foreach", "lion", "sgd_", "_fused_sgd")),
    ("attention", ("flash", "fmha", "attention", "attn", "flex_", "sdpa", "cudnn_mha", "_efficient_mem")),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax", "logsumexp", "softmax_backward", "_ce_", "lce_")),
    (
        "matmul",
        (
            "gemm",
            "cutlass",
            "cublas",
            "nvjet",
            "xmma",
            "wgmma",
            "matmul",
            "_mm_",
            "triton_tem_fused_mm",
            "triton_tem_fused_addmm",
            "tem_fused_bmm",
            "scaled_mm",
            "sm90_",
            "sm80_",
            "ampere_",
            "hopper_",
            "splitkreduce",
        ),
    ),  # fmt: skip
    (
        "norm/elementwise/triton",
        (
            "triton",
            "elementwise",
            "vectorized",
            "reduce",
            "norm",
            "silu",
            "swiglu",
            "rope",
            "rotary",
            "embedding",
            "index",
            "gather",
            "scatter",
            "cat",
            "copy",
            "fill",
            "unrolled",
            "cast",
            "amax",
            "to_fp8",
            "float8",
        ),
    ),  # fmt: skip
)


def categorize_kernel(name: str) -> str:
    """The category of one GPU kernel (or memcpy/memset) by its name, case-insensitive; one of CATEGORIES.

    Inductor's pointwise/reduction kernels (triton_poi/red/per_*) are "loss" when they compute the loss,
    else norm/elementwise. Other names go through substring rules in a fixed order (communication,
    optimizer, attention, loss, matmul, then any other Triton/elementwise/norm kernel); a name none
    matches is "other"."""
    low = name.lower()
    if low.startswith(("triton_poi", "triton_red", "triton_per")):
        # Inductor pointwise/reduction kernels are named after the ops fused into them (a layout copy next
        # to attention carries "flash_attention"); only the loss's own kernels are told apart.
        return "loss" if any(n in low for n in dict(_RULES)["loss"]) else "norm/elementwise/triton"
    for category, needles in _RULES:
        if any(n in low for n in needles):
            return category
    return "other"


def _device_events(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Complete ("X") events that ran on the GPU: kernels, memcpys and memsets."""
    cats = {"kernel", "gpu_memcpy", "gpu_memset"}
    return [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and e.get("cat") in cats]


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals (µs): overlapping streams count once."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def breakdown(trace: dict[str, Any], wall_s: float, top: int = 15) -> dict[str, Any]:
    """Kernel time by category (µs and share of all kernel time), the `top` kernels by total time, and the
    GPU idle fraction = 1 - busy / wall, where busy is the union of device intervals and `wall_s` the host
    clock over the same profiled steps (synchronized at both ends)."""
    events = _device_events(trace)
    by_cat: dict[str, float] = defaultdict(float)
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        dur = float(e.get("dur", 0.0))
        by_cat[categorize_kernel(e.get("name", ""))] += dur
        k = by_name[e.get("name", "")]
        k[0] += dur
        k[1] += 1
    total = sum(by_cat.values()) or 1.0
    busy = _union_us([(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))) for e in events])
    wall_us = wall_s * 1e6
    kernels = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "categories": {
            c: {"us": by_cat.get(c, 0.0), "share": by_cat.get(c, 0.0) / total} for c in CATEGORIES
        },
        "top": [
            {
                "name": n,
                "category": categorize_kernel(n),
                "us": v[0],
                "calls": int(v[1]),
                "share": v[0] / total,
            }
            for n, v in kernels
        ],
        "kernel_us": sum(by_cat.values()),
        "busy_us": busy,
        "wall_us": wall_us,
        "idle_fraction": max(0.0, 1.0 - busy / wall_us) if wall_us > 0 else float("nan"),
    }


def render(result: dict[str, Any], title: str) -> str:
    """The breakdown as Markdown: the category table, the idle line and the top kernels."""
    lines = [f"# {title}", "", "| category | GPU ms | share of kernel time |", "| --- | --- | --- |"]
    for c, v in result["categories"].items():
        lines.append(f"| {c} | {v['us'] / 1e3:,.1f} | {v['share']:.1%} |")
    lines += [
        "",
        f"Profiled window: wall {result['wall_us'] / 1e3:,.1f} ms, GPU busy {result['busy_us'] / 1e3:,.1f} ms "
        f"(union of kernels and copies), **GPU idle {result['idle_fraction']:.1%}**.",
        "",
        "| # | kernel | category | calls | GPU ms | share |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, k in enumerate(result["top"], 1):
        name = k["name"] if len(k["name"]) <= 110 else k["name"][:107] + "..."
        name = name.replace("|", "\\|")
        lines.append(
            f"| {i} | `{name}` | {k['category']} | {k['calls']} | {k['us'] / 1e3:,.2f} | {k['share']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def breakdown_file(trace_path: str | Path, wall_s: float, top: int = 15) -> dict[str, Any]:
    """`breakdown` of an exported Chrome trace file."""
    return breakdown(json.loads(Path(trace_path).read_text()), wall_s, top)


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of [start, end) intervals as sorted, disjoint intervals."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def idle_by_phase(
    trace: dict[str, Any], prefixes: tuple[str, ...] = ("mt.", "engine.", "session.")
) -> dict[str, dict]:
    """Where the GPU waits for the host: the profiled span cut by the host's named phases (the
    `record_function` ranges whose names start with `prefixes`; nested ones count for the innermost, and
    where ranges of two threads overlap the one that started last counts), and for each phase its wall
    time on the host, the GPU's busy time meanwhile (union of kernels and copies) and the rest, the GPU
    idle. Time inside the span but in no phase is "(no phase)". Values in µs."""
    events = trace.get("traceEvents", [])
    phases = [
        (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0)), e["name"])
        for e in events
        if e.get("ph") == "X" and e.get("cat") == "user_annotation" and e.get("name", "").startswith(prefixes)
    ]
    busy = _merged(
        [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))) for e in _device_events(trace)]
    )
    if not phases and not busy:
        return {}
    lo = min([p[0] for p in phases] + [b[0] for b in busy])
    hi = max([p[1] for p in phases] + [b[1] for b in busy])
    cuts = sorted({lo, hi, *(p[0] for p in phases), *(p[1] for p in phases)})
    starts = sorted(phases)
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"wall_us": 0.0, "busy_us": 0.0, "calls": 0})
    for _, _, name in phases:
        out[name]["calls"] += 1
    active: list[tuple[float, float, str]] = []
    nxt = j = 0
    for a, b in pairwise(cuts):
        while nxt < len(starts) and starts[nxt][0] <= a:
            active.append(starts[nxt])
            nxt += 1
        active = [p for p in active if p[1] > a]
        # the latest start (on a tie the earlier end) is the innermost
        name = max(active, key=lambda p: (p[0], -p[1]))[2] if active else "(no phase)"
        while j < len(busy) and busy[j][1] <= a:
            j += 1
        overlap, k = 0.0, j
        while k < len(busy) and busy[k][0] < b:
            overlap += min(b, busy[k][1]) - max(a, busy[k][0])
            k += 1
        out[name]["wall_us"] += b - a
        out[name]["busy_us"] += overlap
    for v in out.values():
        v["idle_us"] = v["wall_us"] - v["busy_us"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["idle_us"]))


def render_idle_by_phase(phases: dict[str, dict], unit: str = "s") -> str:
    """:func:`idle_by_phase` as a Markdown table, largest GPU idle first, times in `unit` ("s" or "ms")."""
    scale = {"s": 1e6, "ms": 1e3}[unit]
    wall = sum(v["wall_us"] for v in phases.values()) or 1.0
    idle = sum(v["idle_us"] for v in phases.values())
    lines = [
        f"GPU idle {idle / scale:,.2f} {unit} of {wall / scale:,.2f} {unit} ({idle / wall:.1%}); by the host "
        "phase it fell in:",
        "",
        f"| host phase | ranges | wall {unit} | GPU busy {unit} | GPU idle {unit} | share of idle |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, v in phases.items():
        lines.append(
            f"| {name} | {int(v['calls'])} | {v['wall_us'] / scale:,.2f} | {v['busy_us'] / scale:,.2f} "
            f"| {v['idle_us'] / scale:,.2f} | {v['idle_us'] / (idle or 1.0):.1%} |"
        )
    return "\n".join(lines) + "\n"
