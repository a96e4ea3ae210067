"""Run configuration: one dataclass per component, a named run is a function returning a RunConfig.

A config is plain data: it is loaded from JSON/YAML (`load_config`), logged to MLflow flattened
(`flatten`), and saved inside every checkpoint (`to_dict`). Unknown keys are an error, so a typo in a
config file fails loudly instead of silently running the default.

The deployment profiles' `model:` and `training:` sections are read here too (`from_profile`), by
typed section dataclasses whose unset keys keep the RunConfig defaults: every default lives once, on
the dataclasses below, and a new training setting needs no translation layer in the orchestrator.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Device = Literal["auto", "cpu", "cuda"]
Parallel = Literal["ddp", "fsdp"]
# The training objectives, by name; losses.OBJECTIVES builds each (a test keeps the two in step).
Objective = Literal["causal_lm"]


@dataclass
class ModelConfig:
    """Which model to train. `init="config"` builds a fresh Llama from the dims below (the default
    profile: nothing from a hub); `init="pretrained"` loads `name_or_path` (a local HF dir such as a
    previous stage's `output_dir/hf`, or a hub id) and ignores the dims."""

    init: Literal["config", "pretrained"] = "config"
    name_or_path: str | None = None
    # Tokenizer dir (special tokens and chat template of contracts.chat). None: `name_or_path` when pretrained, else the shards manifest's
    # `tokenizer_dir` (CPT). The vocabulary size and special-token ids come from it.
    tokenizer_dir: str | None = None
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 128
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    # Dtype the weights are held in. Keep float32 for training: on CUDA the forward runs under bf16
    # autocast with fp32 master weights.
    torch_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Attention kernel: "sdpa" (for the Llama family our packed kernel: FlashAttention through SDPA when
    # unmasked, flex-attention for document masks on GPU; see attention.py), "eager", or "flex_attention".
    attn_implementation: Literal["sdpa", "eager", "flex_attention"] = "sdpa"


@dataclass
class DataConfig:
    """Where the tokens come from. CPT reads packed shards (``contracts.packed``) from `shards_dir`; SFT reads a
    JSONL (``contracts.sft``) from `sft_path`. `seq_len` is the number of input tokens per row (a CPT window
    holds seq_len + 1 tokens so that targets are the inputs shifted by one)."""

    shards_dir: str | None = None
    sft_path: str | None = None
    seq_len: int = 32
    seed: int = 0
    # Windows (CPT) or examples (SFT) at the end of the data held out for the eval loss, never trained on.
    holdout: int = 8
    # CPT: attention does not cross document boundaries (EOS) inside a packed window. Costs a mask per
    # micro-batch and flex-attention instead of FlashAttention on GPU (bench/train_throughput.py measures it).
    doc_mask: bool = False
    # SFT: a folder where the rendered examples are kept, keyed by the JSONL's bytes, the tokenizer and
    # seq_len, so runs that fine-tune on the same set with the same tokenizer (the ablation's arms)
    # render it once. None: render every time.
    render_cache_dir: str | None = None


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay from `lr` to `min_lr` (per-step, see schedule.py)."""

    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global L2 norm of the gradients; <= 0 disables clipping
    # Fused (single-kernel) AdamW. None: on CUDA. A fused optimizer also lets the loop skip a non-finite
    # step on the device instead of synchronizing with the host every step (loop.py).
    fused: bool | None = None


@dataclass
class ScheduleConfig:
    """Loop lengths, all in optimizer steps. One step = micro_batch_size * grad_accum_steps * world_size
    rows. 0 disables eval / periodic checkpoints (a final checkpoint is always written)."""

    max_steps: int = 30
    micro_batch_size: int = 4
    grad_accum_steps: int = 1
    eval_every: int = 10
    eval_batches: int = 2  # micro-batches per eval (capped by the held-out data)
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    log_every: int = 1
    final_checkpoint: bool = True  # write a checkpoint at max_steps (benchmarks turn it off)


@dataclass
class PerfConfig:
    """Speed switches that do not change the maths (up to bf16 rounding).

    `loss_chunk_tokens`: tokens per chunk of the fused linear cross-entropy (losses.py); 0 computes full
    logits. `activation_checkpointing`: recompute each decoder layer in the backward (less memory, ~30%
    more compute). `prefetch_batches`: micro-batches read ahead by a background thread (0: inline).
    `compile_mode`: torch.compile mode when `RunConfig.compile` (None: the default mode).
    `compile_scope`: what `RunConfig.compile` compiles — "block": each decoder layer on its own (they share
    one graph, compile time does not grow with depth; as torchtitan); "decoder": the whole decoder (the
    embeddings, every layer, the final norm) as one graph, fewer Python returns between kernels and one
    graph for CUDA graphs (`compile_mode: reduce-overhead`) to capture; one process or DDP only.
    `float8`: train the decoder's large linear layers in float8 (torchao `convert_to_float8_training`,
    dynamic tensorwise scaling; the embeddings, the output head and linears below torchao's size rule stay
    bf16: parallel.float8_module_filter). Needs a CUDA GPU of compute capability >= 8.9 (Ada, Hopper) and
    the `torchao` package; changes the maths up to float8 rounding.
    """

    loss_chunk_tokens: int = 4096
    activation_checkpointing: bool = False
    prefetch_batches: int = 2
    compile_mode: str | None = None
    compile_scope: str = "block"
    float8: bool = False


@dataclass
class LoraConfig:
    """LoRA adapters for SFT (ignored by CPT and when `RunConfig.full_finetune` is true)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class MlflowConfig:
    """Log to MLflow. Either `run_id` of a run the caller created (we attach to it), or `experiment`
    (+ `run_name`, `tags`) for a new run. The run is ended FINISHED, or FAILED on an exception."""

    tracking_uri: str
    run_id: str | None = None
    experiment: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunConfig:
    """A whole run: the components plus where outputs go and how to run.

    `output_dir` receives `checkpoints/`, `metrics.jsonl`, `summary.json`, `hf/` (the exported model)
    and, for LoRA SFT, `adapter/`. With `resume` true a run continues from the latest checkpoint in
    `output_dir` (if any), so rerunning a killed job picks up where it stopped.
    """

    output_dir: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    mlflow: MlflowConfig | None = None
    name: str = "run"
    device: Device = "auto"
    seed: int = 1337
    resume: bool = True
    full_finetune: bool = False  # SFT only: train all weights instead of LoRA adapters
    compile: bool = False  # torch.compile the model + loss (GPU profiles turn it on)
    # Data parallelism under torchrun: "ddp" (replicated weights) or "fsdp" (FSDP2 fully_shard: weights,
    # gradients and optimizer state sharded). One process: the same code, no wrapper.
    parallel: Parallel = "ddp"
    # What the loop minimizes (losses.OBJECTIVES). "causal_lm": mean next-token cross-entropy over the
    # positions whose label is not -100 — every position in CPT; the assistant tokens in SFT, whose data
    # masks the rest.
    objective: Objective = "causal_lm"
    perf: PerfConfig = field(default_factory=PerfConfig)
    # Peak FLOP/s of one device for the MFU estimate; None: a nominal value per device kind (metrics.py).
    peak_flops: float | None = None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _build(cls: type, data: Any, where: str, *, exclude: tuple[str, ...] = (), typed: bool = False) -> Any:
    """Build dataclass `cls` from a dict, recursing into dataclass-typed fields; unknown keys raise, naming
    the closest known key. `exclude`: fields the data may not set. `typed`: check each value against its
    annotation here (profile sections); run configs leave that to `validate`, whose messages say more."""
    if not isinstance(data, dict):
        raise ValueError(f"config: {where or 'top level'} must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls) if f.name not in exclude)
    unknown = sorted(str(k) for k in set(data) - set(names))
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"config: unknown key(s) {unknown} in {where or 'top level'}{hint}; known: {names}")
    kwargs = {}
    for key, value in data.items():
        sub = _dataclass_of(hints[key])
        path = f"{where}.{key}" if where else key
        if sub is not None and value is not None:
            kwargs[key] = _build(sub, value, path, typed=typed)
        elif typed and not _type_ok(value, hints[key]):
            raise ValueError(
                f"config: {path} must be {_type_name(hints[key])}, got {type(value).__name__} {value!r}"
            )
        elif key == "betas":
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ValueError(f"config: {where or 'top level'}: {e}") from e


def _type_name(hint: Any) -> str:
    """`float | None` -> "float", `Literal["ddp", "fsdp"]` -> "one of ['ddp', 'fsdp']" (null means unset)."""
    union = typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    lit = [f"one of {list(typing.get_args(a))}" for a in args if typing.get_origin(a) is Literal]
    return " or ".join(lit or [getattr(a, "__name__", str(a)) for a in args])


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's annotation (scalars, Literal, unions, lists; ints pass as floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return value in args
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return any(_type_ok(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool or hint is str:
        return isinstance(value, hint)
    if hint in (int, float):
        return isinstance(value, int | float if hint is float else int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple) and all(_type_ok(v, args[0]) for v in value)
    return origin is not dict or isinstance(value, dict)


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass inside `X` or `X | None`, else None."""
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg  # type: ignore[return-value]
    return None


def validate(cfg: RunConfig) -> RunConfig:
    """Check the values that would otherwise fail deep inside the loop; returns cfg."""
    errors = []
    if cfg.model.init not in ("config", "pretrained"):
        errors.append(f"model.init must be 'config' or 'pretrained', got {cfg.model.init!r}")
    if cfg.model.init == "pretrained" and not cfg.model.name_or_path:
        errors.append("model.name_or_path is required when model.init is 'pretrained'")
    if cfg.device not in typing.get_args(Device):
        errors.append(f"device must be auto, cpu or cuda, got {cfg.device!r}")
    for name in ("max_steps", "micro_batch_size", "grad_accum_steps", "log_every", "keep_checkpoints"):
        if getattr(cfg.schedule, name) < 1:
            errors.append(f"schedule.{name} must be >= 1")
    if cfg.data.seq_len < 1:
        errors.append("data.seq_len must be >= 1")
    if cfg.optim.min_lr > cfg.optim.lr:
        errors.append("optim.min_lr must be <= optim.lr")
    if cfg.parallel not in typing.get_args(Parallel):
        errors.append(f"parallel must be 'ddp' or 'fsdp', got {cfg.parallel!r}")
    if cfg.objective not in typing.get_args(Objective):
        errors.append(f"objective must be one of {list(typing.get_args(Objective))}, got {cfg.objective!r}")
    if cfg.model.attn_implementation not in ("sdpa", "eager", "flex_attention"):
        errors.append(
            f"model.attn_implementation must be sdpa, eager or flex_attention, got {cfg.model.attn_implementation!r}"
        )
    if cfg.data.doc_mask and cfg.model.attn_implementation == "eager":
        errors.append("data.doc_mask needs model.attn_implementation 'sdpa' or 'flex_attention'")
    if cfg.perf.loss_chunk_tokens < 0 or cfg.perf.prefetch_batches < 0:
        errors.append("perf.loss_chunk_tokens and perf.prefetch_batches must be >= 0")
    if cfg.perf.compile_scope not in ("block", "decoder"):
        errors.append(f"perf.compile_scope must be 'block' or 'decoder', got {cfg.perf.compile_scope!r}")
    elif cfg.perf.compile_scope == "decoder" and cfg.parallel == "fsdp":
        errors.append("perf.compile_scope 'decoder' is for one process or DDP; FSDP compiles block by block")
    if cfg.perf.float8 and cfg.device == "cpu":
        errors.append("perf.float8 needs a CUDA GPU of compute capability >= 8.9 (Ada/Hopper); device is cpu")
    if errors:
        raise ValueError("config: " + "; ".join(errors))
    return cfg


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from nested plain data (the shape `to_dict` returns)."""
    return validate(_build(RunConfig, data, ""))


def load_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from a .json or .yaml/.yml file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config: {path} is not valid JSON: {e}") from e
    return config_from_dict(data)


def debug_config(output_dir: str | Path, **overrides: Any) -> RunConfig:
    """The tiny debug run used by tests and CI: a 2-layer, 64-wide Llama, seq_len 32, 30 steps on CPU.

    `overrides` are top-level RunConfig fields; pass component objects (or edit the result) for
    nested changes, e.g. `cfg.schedule.max_steps = 4`.
    """
    cfg = RunConfig(output_dir=str(output_dir), name="debug", device="cpu")
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ValueError(f"debug_config: unknown field {key!r}")
        setattr(cfg, key, value)
    return validate(cfg)


# Llama dims of the named sizes (GPT-2 vocabulary padded to 50304, tied embeddings). Non-embedding
# parameters: 124m 85M, 350m 299M, 1b 0.97B (the sizes of bench/train_throughput.py's table).
LLAMA_SIZES: dict[str, dict[str, int]] = {
    "124m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12),
    "350m": dict(hidden_size=1024, intermediate_size=2688, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=16),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8),
}  # fmt: skip


def gpu_config(output_dir: str | Path, shards_dir: str | None = None, size: str = "350m") -> RunConfig:
    """The single-GPU CPT run: a fresh ~350M Llama (or `size` of LLAMA_SIZES) on the pipeline's shards,
    seq 1024, micro-batch 16 (16k tokens per step), bf16 autocast, torch.compile, fused AdamW, chunked
    loss, prefetching loader. `model.init="pretrained"` + `name_or_path` trains any causal LM instead.
    """
    if size not in LLAMA_SIZES:
        raise ValueError(f"gpu_config: unknown size {size!r}; known: {sorted(LLAMA_SIZES)}")
    cfg = RunConfig(
        output_dir=str(output_dir),
        name=f"gpu-{size}",
        device="cuda",
        compile=True,
        model=ModelConfig(max_position_embeddings=4096, rope_theta=10000.0, **LLAMA_SIZES[size]),
        data=DataConfig(shards_dir=shards_dir, seq_len=1024, holdout=64),
        optim=OptimConfig(lr=6e-4, min_lr=6e-5, warmup_steps=100, weight_decay=0.1),
        schedule=ScheduleConfig(
            max_steps=2000, micro_batch_size=16, grad_accum_steps=1, eval_every=250, eval_batches=4,
            checkpoint_every=500, log_every=10,
        ),
    )  # fmt: skip
    return validate(cfg)


# Profile sections. A profile (orchestration/profiles/*.yaml) holds a `model:` and a `training:` section;
# training reads them itself. `None` below means "not set in the profile": the RunConfig default applies.


@dataclass
class StageSection:
    """One stage's block of `training:` (`stage1`, `stage2`, `sft`). Each key is a field of the RunConfig
    component that owns it (optim, schedule, data or the run itself), found by name in `from_profile`."""

    max_steps: int | None = None
    micro_batch_size: int | None = None
    grad_accum_steps: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    min_lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    log_every: int | None = None
    objective: Objective | None = None
    lora: LoraConfig | None = None
    full_finetune: bool | None = None
    # this stage's wrapper under torchrun, over `training.parallel` (e.g. `sft: {parallel: ddp}` for LoRA)
    parallel: Parallel | None = None


@dataclass
class TrainingSection:
    """The profile's `training:` section: how every stage runs, then one block per stage. `device`, `seed`,
    `compile`, `parallel` and `perf` are the RunConfig fields of those names."""

    device: Device | None = None
    seed: int | None = None
    compile: bool | None = None
    parallel: Parallel | None = None
    perf: PerfConfig | None = None
    doc_mask: bool | None = None  # CPT stages only: an SFT row is one conversation
    nproc_per_node: int = 1  # processes per node; more than one runs the stage under torchrun
    nnodes: int = 1  # nodes; more than one: torchrun with a c10d rendezvous (training.launch)
    rdzv_endpoint: str | None = None  # HOST:PORT of node rank 0 (None: the launching host, port 29400)
    # nnodes > 1: "local" starts every node's torchrun on the launching machine (tests, one big host);
    # "external": only node rank 0 starts there, the scheduler starts the others (the command is logged).
    node_launch: Literal["local", "external"] = "local"
    stage1: StageSection = field(default_factory=StageSection)
    stage2: StageSection = field(default_factory=StageSection)
    sft: StageSection = field(default_factory=StageSection)


# The pipeline's stages in profile terms: the base model, CPT stages 1 and 2, SFT.
PROFILE_STAGES = ("base", "stage1", "stage2", "sft")
# The profile's `model:` section is a ModelConfig but for the tokenizer, which the pipeline trains.
_PIPELINE_OWNED_MODEL_KEYS = ("tokenizer_dir",)


def profile_sections(
    model: dict[str, Any] | None, training: dict[str, Any] | None
) -> tuple[ModelConfig, TrainingSection]:
    """The profile's `model:` and `training:` sections, typed (a ModelConfig without a tokenizer, and a
    TrainingSection). Raises ValueError naming an unknown or mistyped key and its section, e.g.
    `config: unknown key(s) ['lrr'] in training.stage1 (did you mean 'lr'?)`."""
    return (
        _build(ModelConfig, model or {}, "model", exclude=_PIPELINE_OWNED_MODEL_KEYS, typed=True),
        _build(TrainingSection, training or {}, "training", typed=True),
    )


def _set_on_owner(cfg: RunConfig, key: str, value: Any) -> None:
    """Set a profile value on the component of `cfg` with a field of that name (the run itself last)."""
    for part in (cfg.optim, cfg.schedule, cfg.data, cfg):
        if key in {f.name for f in dataclasses.fields(part)}:
            setattr(part, key, value)
            return
    raise TypeError(f"profile key {key!r} has no field in RunConfig")


def from_profile(
    stage: str,
    model: dict[str, Any] | None,
    training: dict[str, Any] | None,
    *,
    output_dir: str | Path,
    tokenizer_dir: str | Path,
    parent_hf: str | Path | None,
    data: str | Path | None,
    name: str | None = None,
) -> RunConfig:
    """The RunConfig of one pipeline stage (PROFILE_STAGES) from a profile's `model:` and `training:`.

    "base": the model built from `model:` (or loaded from its `name_or_path`) with the pipeline's
    tokenizer. A trained stage starts from its parent's export `parent_hf` (only `attn_implementation`
    carries over from `model:`) and reads `data`: packed shards for "stage1"/"stage2", the directory
    holding `train.jsonl` for "sft". `name` names the run (default: the stage).
    """
    if stage not in PROFILE_STAGES:
        raise ValueError(f"unknown profile stage {stage!r}; expected one of {PROFILE_STAGES}")
    base, train = profile_sections(model, training)
    if parent_hf is None:
        model_cfg = dataclasses.replace(base, tokenizer_dir=str(tokenizer_dir))
    else:
        model_cfg = ModelConfig(
            init="pretrained",
            name_or_path=str(parent_hf),
            tokenizer_dir=str(tokenizer_dir),
            attn_implementation=base.attn_implementation,
        )
    cfg = RunConfig(output_dir=str(output_dir), name=name or stage, model=model_cfg)
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    for f in dataclasses.fields(TrainingSection):
        value = getattr(train, f.name)
        if f.name in run_fields and value is not None:
            setattr(cfg, f.name, value)
    if train.doc_mask is not None and stage != "sft":
        cfg.data.doc_mask = train.doc_mask
    section = (getattr(train, stage) if stage != "base" else None) or StageSection()  # `stage1:` may be empty
    for f in dataclasses.fields(section):
        if getattr(section, f.name) is not None:
            _set_on_owner(cfg, f.name, getattr(section, f.name))
    if data is not None:
        if stage == "sft":
            cfg.data.sft_path = str(Path(data) / "train.jsonl")
        else:
            cfg.data.shards_dir = str(data)
    try:
        return validate(cfg)
    except ValueError as e:
        raise ValueError(f"profile stage {stage!r}: {e}") from e


def unsupported_parallelism(cfg: RunConfig, world_size: int, sft: bool) -> str | None:
    """Why `cfg` cannot run on `world_size` processes, or None. FSDP2 shards the frozen base weights and
    the LoRA adapters alike and the adapter export reads unsharded modules, so LoRA runs under DDP only."""
    if world_size > 1 and cfg.parallel == "fsdp" and sft and not cfg.full_finetune:
        return (
            f"parallel 'fsdp' with LoRA on {world_size} processes is not supported; set "
            "training.sft.parallel: ddp (LoRA under DDP) or training.sft.full_finetune: true"
        )
    return None


def validate_profile_sections(model: dict[str, Any] | None, training: dict[str, Any] | None) -> None:
    """Check a profile's `model:` and `training:` sections as the profile loader reads them: every key
    known and well typed, every stage's RunConfig valid, and runnable on the profile's processes
    (`nproc_per_node` x `nnodes`). Raises ValueError naming the key and section."""
    _, train = profile_sections(model, training)
    if train.nproc_per_node < 1 or train.nnodes < 1:
        raise ValueError("config: training.nproc_per_node and training.nnodes must be >= 1")
    if train.rdzv_endpoint is not None and not train.rdzv_endpoint.rpartition(":")[2].isdigit():
        raise ValueError(f"config: training.rdzv_endpoint must be HOST:PORT, got {train.rdzv_endpoint!r}")
    for stage in PROFILE_STAGES:
        parent, data = (None, None) if stage == "base" else ("parent", "data")  # placeholders: not read
        cfg = from_profile(
            stage, model, training, output_dir="out", tokenizer_dir="tok", parent_hf=parent, data=data
        )
        problem = unsupported_parallelism(cfg, train.nproc_per_node * train.nnodes, sft=stage == "sft")
        if problem:
            raise ValueError(f"config: training.{stage}: {problem}")
