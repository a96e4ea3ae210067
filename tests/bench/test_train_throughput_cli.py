"""``bench/train_throughput.py`` on CPU: its options, the table, the profiler's kernel categories, the
learnable parity data and the float8 option's errors off a Hopper-class GPU (the runs themselves need CUDA)."""

from __future__ import annotations

import math

import pytest
import torch

from bench import train_throughput as tt
from bench.float8_parity import MotifTokens, conditional_entropy_nats, relative_difference
from bench.kernel_breakdown import CATEGORIES, breakdown, categorize_kernel
from training import distributed as D
from training.config import config_from_dict, debug_config, to_dict
from training.parallel import apply_float8, float8_module_filter, prepare_model


def test_parse_several_tokens_per_step_and_engines() -> None:
    args = tt.parse_args(
        [
            "--configs",
            "350m:1024",
            "1b:2048",
            "--tokens-per-step",
            "16384",
            "65536",
            "--engines",
            "hf",
            "torchtitan",
        ]
    )
    assert args.configs == [("350m", 1024), ("1b", 2048)]
    assert args.tokens_per_step == [16384, 65536]
    assert args.engines == ["hf", "torchtitan"]
    assert tt.parse_args([]).engines == ["hf", "hf+liger", "ours", "ours+fp8", "torchtitan"]


def test_profile_engine_and_trace_out() -> None:
    args = tt.parse_args(
        ["--profile-out", "p.md", "--profile-engine", "ours+fp8", "--trace-out", "t.json.gz"]
    )
    assert (args.profile_engine, args.trace_out) == ("ours+fp8", "t.json.gz")
    assert tt.parse_args([]).profile_engine == "ours"


@pytest.mark.parametrize(
    "argv",
    [
        ["--profile-engine", "hf"],  # the profile runs one of our engines
        ["--engines", "deepspeed"],
        ["--configs", "7b:1024"],
        ["--configs", "350m"],
        ["--configs", "350m:1024", "--tokens-per-step", "1000"],  # not a whole number of rows
        ["--tokens-per-step", "16384", "--max-micro-batch", "3"],  # 16 rows are not whole micro-batches of 3
        ["--max-micro-batch", "0"],
        ["--perf", "loss_chunk_tokens"],  # not KEY=VALUE
        ["--perf", "no_such_knob=1"],
        ["--perf", "loss_chunk_tokens=many"],  # not an int
    ],
)
def test_bad_arguments_exit(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        tt.parse_args(argv)


def test_table_ratios_and_failed_row() -> None:
    base = {"size": "350m", "seq": 1024, "tokens_per_step": 16384, "n": 300e6, "micro": 16, "peak_gib": 10.0}
    rows = [
        {**base, "engine": "hf", "tps": 100_000.0},
        {**base, "engine": "ours", "tps": 250_000.0},
        {**base, "engine": "torchtitan", "tps": 200_000.0},
        {**base, "engine": "hf+liger", "error": "ImportError: no module | named liger\nsecond line"},
        {**base, "tokens_per_step": 65536, "engine": "ours", "tps": 300_000.0},
    ]
    lines = tt.render_table(rows, peak=989e12)
    ours = lines[3]
    assert "| 2.50x | 1.25x |" in ours
    assert "failed: ImportError: no module / named liger second line" in lines[5]
    assert lines[6].endswith("| - | - |")  # no peers at 65536
    assert all(line.count("|") == lines[0].count("|") for line in lines)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "matmul"),
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTT", "matmul"),
        ("triton_tem_fused_mm_0", "matmul"),
        ("void cutlass::device_kernel<cutlass3x_sm90_tensorop_gemm_f8>", "matmul"),
        ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128>>", "attention"),
        ("triton_tem_fused_flex_attention_0", "attention"),
        ("triton_poi_fused__scaled_dot_product_flash_attention_transpose_0", "norm/elementwise/triton"),
        ("triton_red_fused__log_softmax_nll_loss_backward_3", "loss"),
        ("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_1", "norm/elementwise/triton"),
        ("void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>", "other"),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>",
            "norm/elementwise/triton",
        ),
        (
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>",
            "optimizer",
        ),
        ("Memcpy HtoD (Pinned -> Device)", "comm/memcpy"),
        ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", "comm/memcpy"),
        ("some_unknown_kernel", "other"),
    ],
)
def test_categorize_kernel(name: str, category: str) -> None:
    assert categorize_kernel(name) == category
    assert category in CATEGORIES


def test_breakdown_shares_top_and_idle() -> None:
    ev = lambda name, ts, dur, cat="kernel": {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}  # noqa: E731
    trace = {
        "traceEvents": [
            ev("sm90_xmma_gemm", 0, 600),
            ev("sm90_xmma_gemm", 1000, 200),
            ev("flash_fwd_kernel", 500, 200),  # overlaps the first gemm by 100 µs
            ev("Memcpy HtoD", 1200, 100, "gpu_memcpy"),
            ev("aten::mm", 0, 5000, "cpu_op"),  # host event: ignored
        ]
    }
    r = breakdown(trace, wall_s=2000e-6)
    assert r["kernel_us"] == 1100
    assert r["categories"]["matmul"]["share"] == pytest.approx(800 / 1100)
    assert r["top"][0] == {
        "name": "sm90_xmma_gemm",
        "category": "matmul",
        "us": 800.0,
        "calls": 2,
        "share": 800 / 1100,
    }
    assert r["busy_us"] == 1000  # [0, 700) + [1000, 1300)
    assert r["idle_fraction"] == pytest.approx(0.5)


def test_motif_tokens_are_learnable() -> None:
    data = MotifTokens(seq_len=256, seed=0, n_motifs=64, motif_len=16, alphabet=8192)
    bound = data.entropy_bound_nats()
    assert bound == pytest.approx(math.log(64) / 16)
    assert bound < 0.05 * math.log(tt.VOCAB)
    sample = data.stream(200_000)
    h2 = conditional_entropy_nats(sample, order=2)
    assert h2 < bound * 1.2 < 1.0 < math.log(tt.VOCAB)
    batch = data.next_batch(4)
    assert batch["input_ids"].shape == (4, 256)
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
    again = MotifTokens(seq_len=256, seed=0, n_motifs=64, motif_len=16, alphabet=8192)
    assert torch.equal(again.stream(200_000), sample)
    # the parity runs' default motifs: still far below ln V
    assert MotifTokens(seq_len=1024).entropy_bound_nats() < 0.4


def test_relative_difference() -> None:
    d = relative_difference([4.0, 2.0, 1.0], [4.0, 2.0, 1.01], tail=2)
    assert d["final"] == pytest.approx(0.01)
    assert d["tail_mean"] == pytest.approx(0.005 / 1.5)


def test_float8_config_errors_clearly_on_cpu(tmp_path) -> None:
    cfg = debug_config(tmp_path)
    cfg.perf.float8 = True
    with pytest.raises(ValueError, match="perf.float8 needs a CUDA GPU"):
        config_from_dict(to_dict(cfg))
    cfg.device = "auto"  # validation cannot tell; the setup can
    config_from_dict(to_dict(cfg))
    from training.losses import build_objective
    from training.model import init_model

    class Tok:
        pad_token_id, eos_token_id, bos_token_id = 0, 1, None

        def __len__(self) -> int:
            return 128

    model = init_model(cfg.model, Tok())
    env = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="compute capability >= 8.9; device is cpu"):
        prepare_model(cfg, build_objective(cfg, model), env)
    with pytest.raises(ValueError, match="device is cpu"):
        apply_float8(model, torch.device("cpu"))


def test_float8_module_filter() -> None:
    def lin(k: int, n: int) -> torch.nn.Linear:
        return torch.nn.Linear(k, n, bias=False, device="meta")

    # a 1B Llama's layer (LLAMA_SIZES["1b"]): its k/v projections (2048 -> 512) stay bf16
    converted = {
        name: float8_module_filter(lin(k, n), f"model.layers.0.{name}")
        for name, (k, n) in {
            "self_attn.q_proj": (2048, 2048), "self_attn.k_proj": (2048, 512),
            "self_attn.v_proj": (2048, 512), "self_attn.o_proj": (2048, 2048),
            "mlp.gate_proj": (2048, 8192), "mlp.up_proj": (2048, 8192), "mlp.down_proj": (8192, 2048),
        }.items()
    }  # fmt: skip
    assert [n for n, c in converted.items() if not c] == ["self_attn.k_proj", "self_attn.v_proj"]
    # 350M: only gate/up (1024 -> 2688) are large enough
    assert float8_module_filter(lin(1024, 2688), "model.layers.0.mlp.up_proj")
    assert not float8_module_filter(lin(2688, 1024), "model.layers.0.mlp.down_proj")
    assert not float8_module_filter(lin(1024, 1024), "model.layers.0.self_attn.q_proj")
    assert float8_module_filter(lin(1024, 1024), "model.layers.0.self_attn.q_proj", small_too=True)
    assert not float8_module_filter(lin(2048, 8200), "model.layers.0.mlp.up_proj")  # not a multiple of 16
    assert not float8_module_filter(lin(2048, 8192), "lm_head")
    assert not float8_module_filter(torch.nn.Embedding(128, 64), "model.embed_tokens")


def test_liger_patch_is_undone(monkeypatch) -> None:
    """The hf+liger run patches transformers' Llama module; the stock runs after it must not see it."""
    import sys
    import types

    from transformers.models.llama import modeling_llama

    def fake_apply(**kw) -> None:  # what liger's apply_liger_kernel_to_llama does to the module
        modeling_llama.LlamaRMSNorm = object
        modeling_llama.LlamaMLP = object
        modeling_llama.apply_rotary_pos_emb = None
        modeling_llama.LlamaForCausalLM.forward = lambda self, **k: None

    fake = types.ModuleType("liger_kernel.transformers")
    fake.apply_liger_kernel_to_llama = fake_apply
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", fake)
    before = (modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP, modeling_llama.apply_rotary_pos_emb)
    forward = modeling_llama.LlamaForCausalLM.forward
    with tt.liger_patched():
        assert modeling_llama.LlamaRMSNorm is object
    assert (
        modeling_llama.LlamaRMSNorm,
        modeling_llama.LlamaMLP,
        modeling_llama.apply_rotary_pos_emb,
    ) == before
    assert modeling_llama.LlamaForCausalLM.forward is forward


def test_write_parity(tmp_path) -> None:
    from bench.float8_parity import write_parity

    curves = {"bf16": {1: 10.0, 2: 5.0, 3: 1.0}, "float8": {1: 10.0, 2: 5.1, 3: 1.005}}
    res = write_parity(tmp_path / "parity", curves, {"entropy_bound_nats": 0.39})
    assert res["relative_difference"]["final"] == pytest.approx(0.005)
    assert (tmp_path / "parity.json").is_file() and (tmp_path / "parity.png").stat().st_size > 0


def test_profile_and_parity_only_run() -> None:
    args = tt.parse_args(
        [
            "--configs",
            "350m:1024",
            "--engines",
            "--tokens-per-step",
            "65536",
            "--aux-tokens",
            "16384",
            "--profile-out",
            "p.md",
            "--parity-steps",
            "250",
            "--parity-config",
            "1b:1024",
        ]  # fmt: skip
    )
    assert args.engines == [] and args.aux_tokens == 16384 and args.parity_config == ("1b", 1024)
    assert tt.parse_args(["--tokens-per-step", "65536", "32768"]).aux_tokens == 65536


def test_variants_switch_ours_back(monkeypatch) -> None:
    """--clip-outside-optimizer and --float8-all-linears put the earlier behaviour back for a comparison."""
    from training import loop, parallel

    monkeypatch.setattr(loop, "clip_gradients", loop.clip_gradients)  # restored after the test
    monkeypatch.setattr(parallel, "float8_module_filter", parallel.float8_module_filter)
    assert tt.apply_variants(tt.parse_args([])).startswith("clipping inside the fused AdamW")
    small = torch.nn.Linear(1024, 1024, bias=False, device="meta")
    assert not parallel.float8_module_filter(small, "model.layers.0.self_attn.q_proj")

    head = tt.apply_variants(tt.parse_args(["--clip-outside-optimizer", "--float8-all-linears"]))
    assert head == "clipping outside the fused AdamW, float8 on every eligible linear"
    assert parallel.float8_module_filter(small, "model.layers.0.self_attn.q_proj")
    model = torch.nn.Linear(4, 4)
    model(torch.randn(2, 4)).pow(2).sum().backward()
    opt = torch.optim.AdamW(model.parameters(), fused=True)
    before = model.weight.grad.clone()
    loop.clip_gradients(model, opt, 1e-3, in_optimizer=True)  # forced to clip_grad_norm_: grads rescaled
    assert getattr(opt, "grad_scale", None) is None
    assert float(model.weight.grad.norm()) < float(before.norm())


def test_max_micro_batch_sets_every_engines_micro_batch(monkeypatch) -> None:
    """--max-micro-batch splits a step into micro-batches of at most that many rows, for every engine."""
    seen = []

    def fake(kind):
        def run(size, seq, rows, micro, *a, **k):
            seen.append((kind, rows, micro))
            return {"n": 1, "tps": 1.0, "curve": {}}

        return run

    monkeypatch.setattr(tt, "run_ours", fake("ours"))
    monkeypatch.setattr(tt, "run_hf", fake("hf"))
    monkeypatch.setattr(tt, "run_titan", fake("titan"))
    monkeypatch.setattr(tt.torch.cuda, "max_memory_allocated", lambda: 0)
    monkeypatch.setattr(tt, "_clean", lambda: None)
    assert tt.parse_args(["--tokens-per-step", "65536", "--max-micro-batch", "16"]).max_micro_batch == 16
    for engine in ("ours", "hf", "torchtitan"):
        assert tt.measure(engine, "350m", 1024, 64, 1, 1, max_micro=16)["micro"] == 16
    assert tt.measure("ours", "350m", 1024, 8, 1, 1, max_micro=16)["micro"] == 8  # a step of fewer rows
    assert tt.measure("ours", "350m", 1024, 64, 1, 1)["micro"] == 64
    assert seen == [("ours", 64, 16), ("hf", 64, 16), ("titan", 64, 16), ("ours", 8, 8), ("ours", 64, 64)]
    with pytest.raises(ValueError, match="does not divide"):
        tt.measure("ours", "350m", 1024, 64, 1, 1, max_micro=24)


def test_perf_overrides_reach_ours_config(monkeypatch) -> None:
    """--perf KEY=VALUE sets our engines' PerfConfig field (checked like a config file's perf: section)."""
    monkeypatch.setattr(tt, "PERF_OVERRIDES", {})
    args = tt.parse_args(["--perf", "loss_chunk_tokens=16384", "--perf", "prefetch_batches=4"])
    assert args.perf == [("loss_chunk_tokens", 16384), ("prefetch_batches", 4)]
    from training import loop, parallel

    monkeypatch.setattr(loop, "clip_gradients", loop.clip_gradients)
    monkeypatch.setattr(parallel, "float8_module_filter", parallel.float8_module_filter)
    head = tt.apply_variants(args)
    assert head.endswith(", perf.loss_chunk_tokens=16384, perf.prefetch_batches=4")
    cfg = tt._model_cfg("350m", 1024)
    assert (cfg.perf.loss_chunk_tokens, cfg.perf.prefetch_batches) == (16384, 4)
    tt.apply_variants(tt.parse_args([]))
    assert tt._model_cfg("350m", 1024).perf.loss_chunk_tokens == 4096  # back to the default
