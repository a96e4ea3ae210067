"""The CUDA path (bf16 autocast, fused AdamW, torch.compile, CUDA memory metric); skipped without a GPU."""

import pytest
import torch

from training.cpt import train_cpt

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("compile_model", [False, True])
def test_cpt_on_cuda(make_cfg, read_metrics, compile_model):
    cfg = make_cfg(f"gpu_compile{compile_model}", steps=20)
    cfg.device, cfg.compile = "cuda", compile_model
    cfg.schedule.checkpoint_every = 10
    summary = train_cpt(cfg)
    assert summary["device"].startswith("cuda") and summary["steps"] == 20
    records = [r for r in read_metrics(cfg.output_dir) if "loss" in r]
    assert records[-1]["loss"] < 0.7 * records[0]["loss"]
    assert records[-1]["memory_mib"] > 0 and 0 < records[-1]["mfu"] < 1

    resumed = make_cfg(f"gpu_compile{compile_model}", steps=22)  # same output_dir: continues from step 20
    resumed.device, resumed.compile = "cuda", compile_model
    again = train_cpt(resumed)
    assert again["resumed_from"].endswith("step_00000020") and again["steps"] == 22

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(summary["hf_dir"])
    assert not any("_orig_mod" in k for k in model.state_dict())


@pytest.mark.distributed
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_torchrun_nccl_two_gpus(make_cfg, read_metrics, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from training.config import to_dict

    cfg = make_cfg("nccl", steps=6)
    cfg.device = "cuda"
    cfg.schedule.micro_batch_size, cfg.schedule.checkpoint_every = 2, 3
    (tmp_path / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "training", "cpt", "--config", str(tmp_path / "cfg.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(repo), HF_HUB_OFFLINE="1", NCCL_NVLS_ENABLE="0"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["device"] == "cuda:0"
    ddp = [r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r]
    single = make_cfg("nccl_single", steps=6)
    single.device = "cuda"
    train_cpt(single)
    one = [r["loss"] for r in read_metrics(single.output_dir) if "loss" in r]
    assert ddp == pytest.approx(one, rel=2e-2)  # bf16 autocast: equal up to rounding


def _tiny_llama(attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    config._attn_implementation = attn
    torch.manual_seed(0)
    return LlamaForCausalLM(config).cuda()


def test_flex_document_mask_matches_dense_sdpa_mask():
    from training.attention import block_document_mask, dense_document_mask
    from training.losses import CausalLMLoss

    ids = torch.randint(1, 128, (2, 256), device="cuda")
    ids[0, 50], ids[0, 180], ids[1, 7] = 0, 0, 0  # EOS = 0
    labels = torch.randint(0, 128, (2, 256), device="cuda")
    flex, sdpa = _tiny_llama("flex_attention"), _tiny_llama("sdpa")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a = CausalLMLoss(flex)(ids, labels, block_document_mask(ids, 0))
        b = CausalLMLoss(sdpa)(ids, labels, dense_document_mask(ids, 0))
        causal = CausalLMLoss(sdpa)(ids, labels, None)
    assert float(a) == pytest.approx(float(b), rel=1e-2)
    assert abs(float(b) - float(causal)) > 1e-4  # the mask changes what attends to what


def test_compiled_chunked_loss_matches_full_logits():
    from training.losses import CausalLMLoss

    model = _tiny_llama("sdpa")
    ids = torch.randint(0, 128, (4, 128), device="cuda")
    labels = ids.roll(-1, dims=1)
    labels[:, -5:] = -100
    compiled = CausalLMLoss(model, chunk_tokens=100)
    compiled.compile_loss()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = compiled(ids, labels)
        plain = CausalLMLoss(model, chunk_tokens=0)(ids, labels)
    fused.backward()
    grad = model.lm_head.weight.grad.clone()
    model.zero_grad()
    plain.backward()
    assert float(fused) == pytest.approx(float(plain), rel=1e-2), (float(fused), float(plain))
    assert torch.allclose(grad, model.lm_head.weight.grad, rtol=0.05, atol=1e-4)
