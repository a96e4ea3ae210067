import json
import math
from pathlib import Path

import pytest
import torch

from training import loop
from training.checkpoint import list_checkpoints
from training.cpt import train_cpt
from training.metrics import CallbackSink


def test_loss_decreases_and_export_loads_and_generates(make_cfg, read_metrics, tokenizer):
    cfg = make_cfg("cpt", steps=30)
    summary = train_cpt(cfg)

    records = read_metrics(cfg.output_dir)
    losses = [r["loss"] for r in records if "loss" in r]
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(losses) == 30 and len(evals) == 3
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert evals[-1] < evals[0]
    step_metrics = next(r for r in records if "loss" in r)
    for key in ("lr", "grad_norm", "tokens_per_s", "tokens_seen", "mfu", "memory_mib"):
        assert math.isfinite(step_metrics[key]) and step_metrics[key] >= 0, key

    assert summary["steps"] == 30 and summary["tokens_seen"] == 30 * 4 * 32
    assert summary["final_loss"] == pytest.approx(losses[-1])
    assert 0 < summary["n_params_non_embedding"] < summary["n_params"]
    assert json.loads((Path(cfg.output_dir) / "summary.json").read_text()) == summary
    # periodic checkpoints at 10, 20, 30; keep_checkpoints = 2
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["step_00000020", "step_00000030"]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(summary["hf_dir"])
    tok = AutoTokenizer.from_pretrained(summary["hf_dir"])
    assert tok.get_vocab() == tokenizer.get_vocab()
    prompt = tok("the quick brown", return_tensors="pt")
    out = hf.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert "fox" in tok.decode(out[0])  # it learned the repetitive corpus


def _losses_sink(store: list, crash_at: int | None = None) -> CallbackSink:
    def on_metrics(step, metrics):
        if crash_at is not None and step == crash_at:
            raise KeyboardInterrupt("simulated kill")
        store.append(
            (step, {k: metrics[k] for k in ("loss", "eval_loss", "grad_norm", "lr") if k in metrics})
        )

    return CallbackSink(on_metrics)


@pytest.mark.parametrize("fused", [False, True], ids=["foreach", "fused"])
def test_resume_sees_the_same_batches_and_losses(make_cfg, fused):
    """Exact resume, with the CPU's default AdamW and with the fused one (the GPU default, which also
    clips inside the optimizer)."""

    def cfg_for(name):
        cfg = make_cfg(f"{name}_{fused}", steps=8)
        cfg.schedule.checkpoint_every = 4
        cfg.schedule.eval_every = 4
        cfg.optim.fused = fused
        cfg.optim.grad_clip = 0.5  # small enough to bite on this model's early steps
        return cfg

    straight: list = []
    train_cpt(cfg_for("straight"), [_losses_sink(straight)])
    assert any(m.get("grad_norm", 0) > 0.5 for _, m in straight)  # clipping bit

    first: list = []
    with pytest.raises(KeyboardInterrupt):
        train_cpt(cfg_for("killed"), [_losses_sink(first, crash_at=5)])
    second: list = []
    summary = train_cpt(cfg_for("killed"), [_losses_sink(second)])

    assert summary["resumed_from"].endswith("step_00000004")
    assert [s for s, _ in first] == [1, 2, 3, 4, 4] and second[0][0] == 5
    assert first + second == straight  # bit-identical losses, grad norms, LRs and eval losses
    assert summary["tokens_seen"] == 8 * 4 * 32 and summary["tokens_this_run"] == 4 * 4 * 32


def test_non_finite_loss_names_last_good_checkpoint(make_cfg, monkeypatch):
    real = loop.compute_loss
    calls = {"n": 0}

    def poisoned(model, batch):
        calls["n"] += 1
        loss = real(model, batch)
        return loss * torch.tensor(float("nan")) if calls["n"] >= 4 else loss

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    cfg = make_cfg("nan", steps=10)
    cfg.schedule.checkpoint_every = 2
    with pytest.raises(loop.NonFiniteLossError) as err:
        train_cpt(cfg)
    msg = str(err.value)
    assert "loss is nan at step 4" in msg
    assert "step_00000002" in msg and cfg.output_dir in msg
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["step_00000002"]


def test_missing_shard_error_names_path(make_cfg, tmp_path, shards_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((shards_dir / "manifest.json").read_text())
    cfg = make_cfg("missing")
    cfg.data.shards_dir = str(broken)
    with pytest.raises(FileNotFoundError) as err:
        train_cpt(cfg)
    assert str(broken / "shard_00000.bin") in str(err.value)


def test_stage2_continues_from_stage1_hf_dir(make_cfg, read_metrics):
    stage1 = make_cfg("stage1", steps=6)
    s1 = train_cpt(stage1)
    stage2 = make_cfg("stage2", steps=2)
    stage2.model.init, stage2.model.name_or_path = "pretrained", s1["hf_dir"]
    stage2.optim.lr = stage2.optim.min_lr = 1e-9  # ~no update: its first loss must match stage 1's model
    s2 = train_cpt(stage2)
    fresh = make_cfg("fresh", steps=2)
    fresh.optim.lr = fresh.optim.min_lr = 1e-9
    train_cpt(fresh)
    first = [r["loss"] for r in read_metrics(stage2.output_dir) if "loss" in r][0]
    untrained = [r["loss"] for r in read_metrics(fresh.output_dir) if "loss" in r][0]
    assert first < untrained - 0.5  # stage 2 started from stage 1's weights, not from scratch
    assert s2["n_params"] == s1["n_params"]


def test_fused_optimizer_skips_a_non_finite_step_on_device(make_cfg, monkeypatch):
    """With a fused AdamW the loop does not sync per step: the bad step's update is skipped on the device
    (found_inf) and the error comes at the next host read, before any later checkpoint."""
    real = loop.compute_loss
    calls = {"n": 0}

    def poisoned(model, batch):
        calls["n"] += 1
        loss = real(model, batch)
        return loss * torch.tensor(float("nan")) if calls["n"] == 3 else loss

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    cfg = make_cfg("nan_fused", steps=10)
    cfg.optim.fused = True
    cfg.schedule.log_every, cfg.schedule.checkpoint_every = 4, 2
    with pytest.raises(loop.NonFiniteLossError) as err:
        train_cpt(cfg)
    assert "loss is nan at step 3; its update was skipped" in str(err.value)
    assert "step_00000002" in str(err.value)
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["step_00000002"]


@pytest.mark.parametrize("max_norm", [0.05, 1e6, 0.0])
def test_clipping_inside_the_fused_optimizer_equals_clip_grad_norm(max_norm):
    """The fused path hands the clip factor to AdamW as its grad_scale instead of rescaling the grads:
    the same norms and the same weights as clip_grad_norm_ + step, whether clipping bites or not."""
    import copy

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    ours = copy.deepcopy(ref)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, fused=True)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2, fused=True)
    for step in range(6):
        x = torch.randn(8, 16) * (30.0 if step % 2 else 1.0)
        for m in (ref, ours):
            m(x).pow(2).mean().backward()
        norm_ref = loop.clip_gradients(ref, opt_ref, max_norm, in_optimizer=False)
        norm_ours = loop.clip_gradients(ours, opt_ours, max_norm, in_optimizer=True)
        assert float(norm_ours) == pytest.approx(float(norm_ref), rel=1e-6)
        if 0 < max_norm < float(norm_ref):  # clipping bites: ours left the grads as they were
            assert float(torch.nn.utils.get_total_norm([p.grad for p in ours.parameters()])) > max_norm * 2
        opt_ref.step()
        opt_ours.step()
        opt_ref.zero_grad()
        opt_ours.zero_grad()
        for a, b in zip(ref.parameters(), ours.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_a_profiled_step_shows_the_loops_phases(make_cfg):
    """Each phase of a step is a record_function range, so a profile tells where the GPU waits for the
    host (bench/kernel_breakdown.py: idle_by_phase over the train.* ranges)."""
    from bench.kernel_breakdown import idle_by_phase

    cfg = make_cfg("profiled", steps=2)
    cfg.schedule.log_every, cfg.schedule.eval_every, cfg.schedule.checkpoint_every = 1, 2, 2
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_cpt(cfg)
    names = [e.name for e in prof.events()]
    for phase in ("data", "forward", "backward", "clip", "optimizer", "read", "eval", "checkpoint"):
        assert f"train.{phase}" in names, phase
    assert (
        names.count("train.optimizer") == 2
        and names.count("train.forward") == 2 * cfg.schedule.grad_accum_steps
    )
    trace = Path(cfg.output_dir) / "trace.json"
    prof.export_chrome_trace(str(trace))
    phases = idle_by_phase(json.loads(trace.read_text()), prefixes=("train.",))
    assert {"train.forward", "train.backward", "train.optimizer"} <= set(phases)
