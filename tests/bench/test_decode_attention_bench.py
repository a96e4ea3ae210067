"""bench/decode_attention.py: one row per shape and kernel, the baseline first, the kernels agree."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_table_has_every_shape_and_kernel_and_they_agree():
    spec = importlib.util.spec_from_file_location("decode_attention", ROOT / "bench" / "decode_attention.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(
        device="cpu", slots=[3], attend=[32, 64], kernels=["sdpa", "matmul", "varlen"], kv_heads=2, groups=2,
        head_dim=8, iters=1,
    )  # fmt: skip
    lines = bench.run(args)
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("3", a, k) for a in ("32", "64") for k in ("sdpa", "matmul", "varlen")
    ]
    assert all(r[6] == "1.00x" for r in rows if r[2] == "sdpa")
    assert all(float(r[7]) < 1e-5 for r in rows)  # fp32 on the CPU: the same attention
