"""Two torchrun "nodes" x 1 process on 127.0.0.1 (c10d rendezvous, gloo, FSDP2), launched with the
command the training assets build (training.launch), then the 2-rank checkpoint resumed on one node."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import to_dict
from training.cpt import train_cpt
from training.launch import Launch, torchrun_command

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
        reason="torchrun not installed",
    ),
]

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-3  # fp32 on CPU; FSDP's reduce-scatter sums in another order than one process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_command_across_nodes_names_the_rendezvous():
    launch = Launch(nproc_per_node=8, nnodes=4, rdzv_endpoint="gpu-a.internal:29400")
    cmd = torchrun_command(launch, ["-m", "training", "cpt"], node_rank=3, rdzv_id="r1", python="py")
    assert cmd[:4] == ["py", "-m", "torch.distributed.run", "--nproc-per-node=8"]
    assert {"--nnodes=4", "--node-rank=3", "--rdzv-backend=c10d", "--rdzv-endpoint=gpu-a.internal:29400",
            "--rdzv-id=r1", "--rdzv-conf=is_host=false"} <= set(cmd)  # fmt: skip
    assert cmd[-3:] == ["-m", "training", "cpt"] and not any(a.startswith("--local-addr") for a in cmd)
    assert "--standalone" in torchrun_command(Launch(nproc_per_node=2), ["x"])
    assert torchrun_command(Launch(), ["x"], python="py") == ["py", "x"]
    with pytest.raises(ValueError, match="node_rank"):
        torchrun_command(launch, ["x"], node_rank=4)


def test_two_nodes_fsdp_then_resharded_resume_on_one(make_cfg, read_metrics, tmp_path):
    cfg = make_cfg("nodes", steps=4)
    cfg.parallel, cfg.schedule.micro_batch_size = "fsdp", 2  # x 2 ranks = one process's batch of 4
    cfg.schedule.checkpoint_every, cfg.schedule.eval_every = 2, 0
    config = tmp_path / "nodes.json"
    config.write_text(json.dumps(to_dict(cfg)))

    launch = Launch(nproc_per_node=1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{_free_port()}")
    worker = ["-m", "training", "cpt", "--quiet", "--config", str(config)]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    nodes = [
        subprocess.Popen(torchrun_command(launch, worker, node_rank=rank, rdzv_id="multinode-test"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
        for rank in (0, 1)
    ]  # fmt: skip
    outs = []
    try:
        for node in nodes:
            outs.append(node.communicate(timeout=240))
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for node, (_, err) in zip(nodes, outs, strict=True):
        assert node.returncode == 0, err[-3000:]
    summaries = [json.loads(x) for out, _ in outs for x in out.splitlines() if x.startswith("{")]
    assert len(summaries) == 1  # global rank 0 prints it, on whichever node it is
    summary = summaries[0]
    assert summary["world_size"] == 2 and summary["tokens_seen"] == 4 * 2 * 2 * 32
    assert Path(summary["last_checkpoint"]).name == "step_00000004"

    straight = make_cfg("straight", steps=6)
    straight.schedule.checkpoint_every, straight.schedule.eval_every = 2, 0
    train_cpt(straight)
    one = {r["step"]: r["loss"] for r in read_metrics(straight.output_dir) if "loss" in r}
    two = {r["step"]: r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r}
    assert list(two) == [1, 2, 3, 4]
    assert [two[s] for s in two] == pytest.approx([one[s] for s in two], rel=TOL)

    # the checkpoint of 2 FSDP ranks on 2 nodes resumes on 1 node, 1 process, on the same curve
    resumed = make_cfg("nodes", steps=6)
    resumed.schedule.checkpoint_every, resumed.schedule.eval_every = 2, 0
    again = train_cpt(resumed)
    assert again["resumed_from"].endswith("step_00000004") and again["tokens_seen"] == 6 * 4 * 32
    after = {r["step"]: r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r}
    assert [after[5], after[6]] == pytest.approx([one[5], one[6]], rel=TOL)
