"""Training assets: base model → CPT stage 1 → CPT stage 2 → SFT.

Each launches ``training`` in a subprocess through Dagster Pipes (``orchestration.pipes_worker``),
so metrics and logs stream back into the Dagster run; on a cluster the same command runs under
``torchrun``. Each is one MLflow run, created here and filled in by the subprocess. The run's
configuration is ``training.config.from_profile`` of the profile's ``model:`` and ``training:``
sections: training reads its own settings, this module only names the paths.
"""

import contextlib
import dataclasses
import os
import shlex
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    PipesSubprocessClient,
    asset,
)

from assets.common import (
    finished_result,
    png_markdown,
    start_fresh_unless_resuming,
    start_mlflow_run,
    up_to_date_result,
)
from assets.factory import home_anchors, portable
from assets.resources import ForgeResource, MlflowResource
from assets.tracking import dataset_input, mark_failed
from forge.core.io import atomic_write_json, fingerprint
from forge.core.markers import read_marker, upstream_fingerprint
from forge.core.stage import code_fingerprint
from training.config import MlflowConfig, RunConfig, TrainingSection, from_profile, profile_sections, to_dict
from training.launch import Launch, torchrun_command
from training.plots import LOSS_CURVE
from training.research import ARM_BY_NAME, ARMS, arm_configs

STAGES: dict[str, dict[str, Any]] = {
    # stage -> command, its name in the profile's `training:` section, the upstream model, its data
    "base_model": {"command": "init", "section": "base", "parent": None, "data": None},
    "cpt_stage1_model": {
        "command": "cpt",
        "section": "stage1",
        "parent": "base_model",
        "data": "cpt_stage1_shards",
    },
    "cpt_stage2_model": {
        "command": "cpt",
        "section": "stage2",
        "parent": "cpt_stage1_model",
        "data": "cpt_stage2_shards",
    },
    "sft_model": {"command": "sft", "section": "sft", "parent": "cpt_stage2_model", "data": "sft_dataset"},
}
#: the module that dispatches the stages: its import closure is the code every training asset runs
TRAINING_ENTRY = "training.stages"


def model_dir(profile: ForgeResource, stage: str) -> Path:
    return profile.paths.models / stage


def data_dir(profile: ForgeResource, name: str) -> Path:
    return profile.paths.corpus / ("sft" if name == "sft_dataset" else name)


def worker_command(
    command: str,
    config_path: Path,
    nproc_per_node: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "hephaestus",
) -> list[str]:
    """The Pipes worker's argv on node ``node_rank``: plain python, or torchrun (training.launch)."""
    worker = ["-m", "orchestration.pipes_worker", command, "--config", str(config_path)]
    launch = Launch(nproc_per_node=nproc_per_node, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint)
    return torchrun_command(launch, worker, node_rank=node_rank, rdzv_id=rdzv_id)


def _train_asset(stage: str, description: str):
    spec = STAGES[stage]
    deps = [AssetKey("tokenizer")]
    if spec["parent"]:
        deps.append(AssetKey(spec["parent"]))
    if spec["data"]:
        deps.append(AssetKey(spec["data"]))

    @asset(
        key=AssetKey(stage),
        group_name="training",
        deps=deps,
        kinds={"pytorch", "mlflow"},
        description=description,
        pool="trainer",
    )
    def _asset(
        context: AssetExecutionContext,
        profile: ForgeResource,
        mlflow: MlflowResource,
        pipes_subprocess_client: PipesSubprocessClient,
    ) -> MaterializeResult:
        out = model_dir(profile, stage)
        tok = profile.paths.corpus / "tokenizer"
        parent_hf = model_dir(profile, spec["parent"]) / "hf" if spec["parent"] else None
        data = data_dir(profile, spec["data"]) if spec["data"] else None
        model, train = profile.config.get("model"), profile.config.get("training")
        base = from_profile(
            spec["section"],
            model,
            train,
            output_dir=out,
            tokenizer_dir=tok,
            parent_hf=parent_hf,
            data=data,
            name=stage,
        )
        parent = model_dir(profile, spec["parent"]) if spec["parent"] else None
        return launch_training(
            context, profile, mlflow, pipes_subprocess_client,
            name=stage, command=spec["command"], cfg=base, data=data, upstream=[tok, parent],
        )  # fmt: skip

    return _asset


def launch_training(
    context: AssetExecutionContext,
    profile: ForgeResource,
    mlflow: MlflowResource,
    pipes: PipesSubprocessClient,
    *,
    name: str,
    command: str,
    cfg: RunConfig,
    data: Path | None,
    upstream: list[Path | None],
) -> MaterializeResult:
    """Fingerprint, skip when fresh, else run ``command`` with ``cfg`` in a Pipes subprocess under a
    new MLflow run (resuming a killed run with the same fingerprint) and write the marker."""
    out = Path(cfg.output_dir)
    dirs = [d for d in upstream if d is not None] + ([data] if data else [])
    upstream_fps = [upstream_fingerprint(d) for d in dirs]
    # the run's paths (output, data, tokenizer) by their place in the home: a moved home is still fresh
    fp = fingerprint(portable(to_dict(cfg), home_anchors()), upstream_fps, code_fingerprint(TRAINING_ENTRY))
    skipped = up_to_date_result(context, out, fp)
    if skipped is not None:
        return skipped
    start_fresh_unless_resuming(out, fp)  # same fingerprint, no marker: a killed run, resumed

    uri, run_id = start_mlflow_run(context, profile, mlflow, name, stage=name, fingerprint=fp)
    _log_inputs(uri, run_id, data, upstream_fps, profile.paths.root / "plots")
    cfg = dataclasses.replace(cfg, mlflow=MlflowConfig(tracking_uri=uri, run_id=run_id))
    config_path = atomic_write_json(out / "run_config.json", to_dict(cfg))
    train = profile_sections(profile.config.get("model"), profile.config.get("training"))[1]
    commands = node_commands(train, command, config_path, rdzv_id=f"{context.run_id[:8]}-{name}")
    try:
        with other_nodes(context, train, commands[1:], out):
            invocation = pipes.run(command=commands[0], context=context, env={"PYTHONUNBUFFERED": "1"})
            reported = invocation.get_materialize_result()
    except Exception:
        mark_failed(uri, run_id)
        context.log.error(
            f"{name}: training subprocess failed; MLflow run {run_id} marked FAILED; "
            f"metrics so far in {out / 'metrics.jsonl'}"
        )
        raise
    meta = {k: v.value for k, v in (reported.metadata or {}).items()}
    meta.update({"mlflow_run_id": run_id, "hf_dir": str(out / "hf")})
    # drawn by the trainer (training.plots) and logged on the MLflow run; shown on the asset too
    meta["loss_curve_md"] = png_markdown(out / LOSS_CURVE, f"{name} loss curve")
    return finished_result(out, fp, meta)


def node_commands(train: TrainingSection, command: str, config_path: Path, rdzv_id: str) -> list[list[str]]:
    """One argv per node, node rank 0 first (the one launched through Pipes). Several nodes started on
    this machine (``node_launch: local``) meet on 127.0.0.1 at a free port unless the profile names one."""
    endpoint = train.rdzv_endpoint
    if train.nnodes > 1 and endpoint is None and train.node_launch == "local":
        endpoint = f"127.0.0.1:{_free_port()}"
    return [
        worker_command(command, config_path, train.nproc_per_node, nnodes=train.nnodes, node_rank=rank,
                       rdzv_endpoint=endpoint, rdzv_id=rdzv_id)
        for rank in range(train.nnodes)
    ]  # fmt: skip


@contextlib.contextmanager
def other_nodes(context: AssetExecutionContext, train: TrainingSection, commands: list[list[str]], out: Path):
    """Node ranks >= 1 while node rank 0 runs: started here (``local``, logs in ``out/node<R>.log``) or
    by the cluster's scheduler (``external``: the exact command is logged). A local node that fails
    fails the step."""
    if not commands:
        yield
        return
    if train.node_launch == "external":
        for rank, cmd in enumerate(commands, start=1):
            context.log.info(f"node rank {rank} of {train.nnodes}: start on its node: {shlex.join(cmd)}")
        yield
        return
    procs = []
    for rank, cmd in enumerate(commands, start=1):
        with open(out / f"node{rank}.log", "ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
    try:
        yield
        for rank, proc in enumerate(procs, start=1):
            if proc.wait(timeout=600) != 0:
                raise RuntimeError(
                    f"training node rank {rank} exited with {proc.returncode}; see {out / f'node{rank}.log'}"
                )
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_inputs(uri: str, run_id: str, data: Path | None, upstream: list[str], plots: Path) -> None:
    import mlflow

    if data is None:
        return
    marker = read_marker(data) or {}
    summary = {k: v for k, v in (marker.get("metadata") or {}).items() if isinstance(v, int | float | str)}
    ds = dataset_input(
        data.name, str(data), marker.get("fingerprint", fingerprint(upstream)), summary or {"path": str(data)}
    )
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(ds, context="training")
        # the mixture's composition picture (assets.corpus), beside the loss curve in the run's artifacts
        plot = plots / f"{data.name}.png"
        if plot.exists():
            mlflow.log_artifact(str(plot), artifact_path="data")


base_model = _train_asset(
    "base_model",
    "The base model: a Llama initialized from the profile's config "
    "(or a pretrained model by name/path), exported in HF format.",
)
cpt_stage1_model = _train_asset("cpt_stage1_model", "Continual pre-training stage 1 on the full mixture.")
cpt_stage2_model = _train_asset("cpt_stage2_model", "Continual pre-training stage 2 on the seed agent data.")
sft_model = _train_asset(
    "sft_model",
    "Instruction tuning (LoRA via peft, merged) on fct_sft_examples, loss on assistant turns only.",
)


def ablation_key(arm: str) -> AssetKey:
    return AssetKey(["ablation", arm])


#: where each arm's data comes from: the research general mixture, the pipeline's two mixtures, the SFT set
_ARM_DATA = {
    "general": AssetKey(["research", "general_shards"]),
    "stage1": AssetKey("cpt_stage1_shards"),
    "stage2": AssetKey("cpt_stage2_shards"),
    "sft": AssetKey("sft_dataset"),
}


def ablation_data_dirs(profile: ForgeResource) -> dict[str, Path]:
    return {
        "general": profile.paths.root / "research" / "general_shards",
        "stage1": data_dir(profile, "cpt_stage1_shards"),
        "stage2": data_dir(profile, "cpt_stage2_shards"),
        "sft": data_dir(profile, "sft_dataset"),
    }


def _arm_asset(name: str):
    """One checkpoint of the compute-matched ablation (training.research.ARMS), trained like the
    pipeline's stages (same profile blocks, same Pipes worker); skipped when research is off."""
    arm = ARM_BY_NAME[name]
    deps = [AssetKey("tokenizer"), _ARM_DATA[arm.data]]
    deps += [ablation_key(arm.parent)] if arm.parent else []
    deps += [ablation_key("cpt1"), ablation_key("cpt2")] if name == "control" else []  # its token count

    @asset(
        key=ablation_key(name),
        group_name="training",
        deps=deps,
        kinds={"pytorch", "mlflow"},
        description=f"Ablation checkpoint: {arm.description}.",
        pool="trainer",
    )
    def _asset(
        context: AssetExecutionContext,
        profile: ForgeResource,
        mlflow: MlflowResource,
        pipes_subprocess_client: PipesSubprocessClient,
    ) -> MaterializeResult:
        from assets.research import skipped_if_disabled

        skipped = skipped_if_disabled(context, profile)
        if skipped is not None:
            return skipped
        models = profile.paths.models / "ablation"
        data = ablation_data_dirs(profile)
        cfgs = arm_configs(
            profile.config.get("model"),
            profile.config.get("training"),
            profile.settings.research,
            models_dir=models,
            tokenizer_dir=profile.paths.corpus / "tokenizer",
            data_dirs=data,
        )
        return launch_training(
            context, profile, mlflow, pipes_subprocess_client,
            name=f"ablation_{name}", command=arm.command, cfg=cfgs[name], data=data[arm.data],
            upstream=[profile.paths.corpus / "tokenizer", models / arm.parent if arm.parent else None],
        )  # fmt: skip

    return _asset


ablation_assets = [_arm_asset(arm.name) for arm in ARMS]
training_assets = [base_model, cpt_stage1_model, cpt_stage2_model, sft_model, *ablation_assets]
