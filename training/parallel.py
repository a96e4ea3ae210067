"""How the model is wrapped for training, and world-size-independent state for checkpoints and export.

One code path for one process, DDP and FSDP2 (`cfg.parallel` under torchrun):

- the objective is a loss module around the model, chosen in config (losses.build_objective), so a
  step is one module call;
- `cfg.perf.float8`: the decoder's large linear layers train in float8 (torchao), converted before compiling;
- `cfg.compile`: every decoder layer and the chunked loss are compiled on their own (as torchtitan);
- one process: that module; `parallel="ddp"`: DistributedDataParallel around it;
- `parallel="fsdp"`: FSDP2 `fully_shard` on every decoder layer and on the loss module as root; bf16
  parameters / fp32 gradient reduction on CUDA.

Checkpoints hold *full* (unsharded) state dicts keyed by parameter name, gathered to rank 0 with
`torch.distributed.checkpoint.state_dict` (`full_state_dict=True, cpu_offload=True`) and loaded on every
rank with the same helpers, which re-shard them to whatever the current world size and wrapper are. So a
checkpoint written by 2 FSDP ranks resumes in 1 process, under DDP, or on 4 ranks. The cost: rank 0 holds
the whole model + optimizer state in host memory while saving (fine up to a few billion parameters; past
that, switch to sharded `torch.distributed.checkpoint.save`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from training import distributed as D
from training.config import RunConfig

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
_LOAD = StateDictOptions(full_state_dict=True, strict=False)


def decoder_stack(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack of a HF causal LM (peft-wrapped too): `get_decoder()`; a clear error otherwise."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(base, "get_decoder"):
        raise ValueError(f"{type(base).__name__} has no get_decoder(): use perf.compile_scope 'block'")
    return base.get_decoder()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks: `get_decoder().layers` for HF causal LMs, else modules named *DecoderLayer."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        return list(layers)
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def uses_fsdp(cfg: RunConfig, env: D.DistEnv) -> bool:
    return env.enabled and cfg.parallel == "fsdp"


def prepare_model(cfg: RunConfig, objective: torch.nn.Module, env: D.DistEnv) -> torch.nn.Module:
    """Wrap the objective (losses.build_objective: a loss module holding the model, on env.device) for
    training. Returns the module the step calls: the DDP wrapper around the objective, else the objective
    itself (under FSDP the sharded root). Evaluation calls the objective directly. Both compute
    `mean loss = f(input_ids, labels, mask)`."""
    model = objective.model
    if cfg.perf.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.perf.float8:
        apply_float8(model, env.device)
    layers = decoder_layers(model)
    if cfg.compile:
        # Block by block (as torchtitan): the blocks share one compiled graph (parameters are graph inputs),
        # so compile time does not grow with depth; or the whole decoder as one graph (compile_scope).
        # The chunked loss is compiled on its own.
        kwargs = {"mode": cfg.perf.compile_mode} if cfg.perf.compile_mode else {}
        if cfg.perf.compile_scope == "decoder":
            decoder_stack(model).compile(**kwargs)
        else:
            for layer in layers:
                layer.compile(**kwargs)
        objective.compile_loss(**kwargs)
    if uses_fsdp(cfg, env):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if env.device.type == "cuda"
            else MixedPrecisionPolicy()
        )
        if not layers:
            raise ValueError("parallel='fsdp': found no decoder layers to shard in this model")
        for layer in layers:
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(objective, mesh=mesh, mp_policy=mp)
        return objective
    if env.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.local_rank] if env.device.type == "cuda" else None
        return DistributedDataParallel(objective, device_ids=ids)
    return objective


def float8_module_filter(module: torch.nn.Module, fqn: str, *, small_too: bool = False) -> bool:
    """Which modules float8 training converts: linear layers whose both dims are multiples of 16 (what
    the float8 matmul needs), except the output head and the embeddings (kept in bf16 for accuracy, and
    the head is tied to the embeddings in our models), and except small ones: torchao's size rule for
    tensorwise scaling (its `_auto_filter_for_tensorwise`, from H100 benchmarks) leaves a linear with
    in_features <= 4096 and out_features <= 1024 in bf16, where casting to float8 costs more than the
    faster matmul saves (a 1B Llama's k/v projections, a 350M's attention and down projections).
    `small_too` converts those as well (what perf.float8 did before 2026-12-05)."""
    if not isinstance(module, torch.nn.Linear):
        return False
    name = fqn.rsplit(".", 1)[-1]
    if name == "lm_head" or "embed" in name:
        return False
    k, n = module.in_features, module.out_features
    if k % 16 or n % 16:
        return False
    return small_too or not (k <= 4096 and n <= 1024)


def apply_float8(model: torch.nn.Module, device: torch.device) -> int:
    """Swap the model's eligible linear layers (float8_module_filter) for torchao's float8 training
    linears, in place; returns how many were converted. Parameter names and state dicts are unchanged, so
    checkpoints load into a bf16 model and back. A clear ValueError off CUDA or below compute capability
    8.9, and an ImportError naming the package when torchao is missing."""
    if device.type != "cuda":
        raise ValueError(
            f"perf.float8 needs a CUDA GPU of compute capability >= 8.9; device is {device.type}"
        )
    cap = torch.cuda.get_device_capability(device)
    if cap < (8, 9):
        name = torch.cuda.get_device_name(device)
        raise ValueError(
            f"perf.float8 needs compute capability >= 8.9 (Ada/Hopper); {name} is {cap[0]}.{cap[1]}"
        )
    try:
        from torchao.float8 import convert_to_float8_training
    except ImportError as e:
        raise ImportError(f"perf.float8 needs the torchao package (pip install torchao): {e}") from e
    convert_to_float8_training(model, module_filter_fn=float8_module_filter)
    return sum(type(m).__name__ == "Float8Linear" for m in model.modules())


def grad_sync(train_module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Gradient reduction only on the last micro-batch of an accumulation (DDP no_sync / FSDP2 flag)."""
    if hasattr(train_module, "set_requires_gradient_sync"):  # FSDP2 root
        train_module.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    if hasattr(train_module, "no_sync") and not sync:  # DDP
        return train_module.no_sync()
    return contextlib.nullcontext()


def is_sharded(model: torch.nn.Module) -> bool:
    """True when the model's parameters are DTensors (FSDP2)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model (trainable parameters + buffers of trainable modules; frozen LoRA bases left out) and
    optimizer state, keyed by parameter name, on CPU. A collective under FSDP: call on every rank; rank 0
    gets the dicts, other ranks of a sharded model get empty ones."""
    msd = get_model_state_dict(model, options=_FULL)
    osd = get_optimizer_state_dict(model, optimizer, options=_FULL) if optimizer is not None else {}
    return msd, osd


def load_full_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_state: dict[str, Any],
    optim_state: dict[str, Any] | None,
) -> None:
    """Load what `full_state` returned into a model / optimizer of any world size (every rank passes the
    full dicts; sharded parameters take their slice)."""
    set_model_state_dict(model, model_state, options=_LOAD)
    if optimizer is not None and optim_state:
        set_optimizer_state_dict(model, optimizer, optim_state, options=_LOAD)


def gathered_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict (frozen parameters included) on rank 0, for the Hugging Face export of a sharded
    model. A collective: call on every rank."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
