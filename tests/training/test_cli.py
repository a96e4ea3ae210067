import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import to_dict
from training.cpt import train_cpt

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    return env


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=120,
    )


def test_cli_cpt_prints_json_summary(make_cfg, tmp_path):
    cfg = make_cfg("cli", steps=3)
    (tmp_path / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    proc = _cli("cpt", "--config", str(tmp_path / "cfg.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["command"] == "cpt" and summary["steps"] == 3
    assert (Path(summary["hf_dir"]) / "model.safetensors").is_file()
    assert "step 3:" in proc.stderr  # progress goes to stderr, stdout stays machine-readable


def test_api_init_exports_a_loadable_base_model(make_cfg, tokenizer_dir):
    from transformers import AutoModelForCausalLM

    import training

    cfg = make_cfg("init")
    cfg.data.shards_dir = None
    cfg.model.tokenizer_dir = str(tokenizer_dir)
    summary = training.run("init", cfg, [])
    model = AutoModelForCausalLM.from_pretrained(summary["hf_dir"])
    assert model.config.vocab_size == summary["vocab_size"] and model.config.hidden_size == 64
    assert summary["n_params"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="unknown command 'train'"):
        training.run("train", cfg, [])


def test_cli_bad_config_exits_nonzero_with_message(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"output_dir": "o", "schedule": {"max_stepz": 3}}))
    proc = _cli("cpt", "--config", str(tmp_path / "bad.json"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown key(s) ['max_stepz'] in schedule" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.distributed
@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")  # fmt: skip
def test_torchrun_two_cpu_ranks(make_cfg, tmp_path, read_metrics):
    cfg = make_cfg("ddp", steps=4)
    cfg.schedule.micro_batch_size = 2  # x 2 ranks = the same global batch as the single-process default
    cfg.schedule.checkpoint_every = 2
    (tmp_path / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "training", "cpt", "--config", str(tmp_path / "cfg.json")],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # rank 0 only
    summary = lines[0]
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert summary["tokens_seen"] == 4 * 2 * 2 * 32  # steps x ranks x micro batch x seq_len
    losses = [r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r]
    assert len(losses) == 4  # one writer: rank 0
    assert Path(summary["last_checkpoint"]).name == "step_00000004"
    assert (Path(summary["hf_dir"]) / "model.safetensors").is_file()

    # 2 ranks x micro batch 2 = one process x micro batch 4: same windows, same averaged gradients
    single = make_cfg("single", steps=4)
    train_cpt(single)
    single_losses = [r["loss"] for r in read_metrics(single.output_dir) if "loss" in r]
    assert losses == pytest.approx(single_losses, rel=1e-4)
