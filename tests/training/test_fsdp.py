"""FSDP2 (`parallel: fsdp`) under torchrun with 2 CPU processes (gloo), and checkpoints that resume with a
different world size (2 FSDP ranks -> 1 process, 1 process -> 2 FSDP ranks)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import to_dict
from training.cpt import train_cpt

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
        reason="torchrun not installed",
    ),
]

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-3  # fp32 on CPU; FSDP's reduce-scatter sums in another order than one process


def _torchrun_fsdp(cfg, tmp_path: Path, name: str) -> dict:
    import os

    (tmp_path / f"{name}.json").write_text(json.dumps(to_dict(cfg)))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "training", "cpt", "--quiet",
         "--config", str(tmp_path / f"{name}.json")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # rank 0 prints the summary
    return lines[0]


def _losses(read_metrics, output_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(output_dir) if "loss" in r}


def _cfg(make_cfg, name: str, steps: int, fsdp: bool):
    cfg = make_cfg(name, steps=steps)
    cfg.schedule.checkpoint_every = 2
    cfg.schedule.eval_every = 0
    if fsdp:
        cfg.parallel = "fsdp"
        cfg.schedule.micro_batch_size = 2  # x 2 ranks = the single-process micro batch of 4
    return cfg


def test_fsdp_two_ranks_match_one_process_and_resume_in_one(make_cfg, read_metrics, tmp_path):
    fsdp = _cfg(make_cfg, "fsdp", 4, fsdp=True)
    summary = _torchrun_fsdp(fsdp, tmp_path, "fsdp")
    assert summary["world_size"] == 2 and summary["tokens_seen"] == 4 * 2 * 2 * 32
    assert Path(summary["last_checkpoint"]).name == "step_00000004"

    straight = _cfg(make_cfg, "straight", 6, fsdp=False)
    train_cpt(straight)
    one = _losses(read_metrics, straight.output_dir)
    two = _losses(read_metrics, fsdp.output_dir)
    assert list(two) == [1, 2, 3, 4]  # one writer: rank 0
    assert [two[s] for s in two] == pytest.approx([one[s] for s in two], rel=TOL)

    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(summary["hf_dir"])  # gathered from the shards
    assert sum(p.numel() for p in exported.parameters()) == summary["n_params"]

    # the 2-rank checkpoint resumes in one process (same output_dir, 2 more steps) on the same curve
    resumed = _cfg(make_cfg, "fsdp", 6, fsdp=False)
    again = train_cpt(resumed)
    assert again["resumed_from"].endswith("step_00000004") and again["tokens_seen"] == 6 * 4 * 32
    after = _losses(read_metrics, fsdp.output_dir)
    assert [after[5], after[6]] == pytest.approx([one[5], one[6]], rel=TOL)


def test_one_process_checkpoint_resumes_on_two_fsdp_ranks(make_cfg, read_metrics, tmp_path):
    straight = _cfg(make_cfg, "straight", 6, fsdp=False)
    train_cpt(straight)
    one = _losses(read_metrics, straight.output_dir)

    resharded = _cfg(make_cfg, "resharded", 6, fsdp=True)
    src = Path(straight.output_dir) / "checkpoints" / "step_00000004"
    shutil.copytree(src, Path(resharded.output_dir) / "checkpoints" / src.name)
    summary = _torchrun_fsdp(resharded, tmp_path, "resharded")
    assert summary["resumed_from"].endswith("step_00000004") and summary["steps"] == 6
    two = _losses(read_metrics, resharded.output_dir)
    assert list(two) == [5, 6]
    assert [two[5], two[6]] == pytest.approx([one[5], one[6]], rel=TOL)
