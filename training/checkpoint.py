"""Training checkpoints (resumable, atomic, last K kept) and the final Hugging Face export.

Layout: `output_dir/checkpoints/step_00000010/{state.pt,meta.json}`. A checkpoint is written to a
hidden temporary directory beside it and renamed into place, so a killed job leaves either the whole
checkpoint or none; `latest_checkpoint` ignores the temporaries.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.io import atomic_directory

_STEP_DIR = re.compile(r"^step_(\d{8})$")


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU and CUDA), in types `torch.load(weights_only=True)` accepts."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict, restricted to trainable parameters when some are frozen (LoRA): the frozen
    base is reloaded from its source on resume, so it need not be copied into every checkpoint."""
    full = model.state_dict()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    if len(names) == sum(1 for _ in model.parameters()):
        return full
    return {k: v for k, v in full.items() if k in names}


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    data_state: dict[str, Any],
    tokens_seen: int,
    config: dict[str, Any],
    rng: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    keep_last: int = 2,
    model_state: dict[str, Any] | None = None,
    optim_state: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of optimizer step `step` (the number of steps done) and prune to `keep_last`.

    `model` is the unwrapped module (no DDP / compile wrapper). `rng` is one `rng_state()` per rank.
    Model and optimizer state are full, name-keyed dicts (parallel.full_state), so any world size can
    resume; a sharded (FSDP) run gathers them on every rank first and passes `model_state`/`optim_state`.
    Returns the checkpoint directory.
    """
    from training.parallel import full_state

    if model_state is None or optim_state is None:
        model_state, optim_state = full_state(model, optimizer)
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    # rewriting the same step (a final checkpoint right after a periodic one) swaps the whole directory
    with atomic_directory(final) as tmp:
        state = {
            "step": step,
            "model": model_state,
            "optimizer": optim_state,
            "data": data_state,
            "tokens_seen": tokens_seen,
            "rng": rng or [rng_state()],
            "config": config,
            "extra": extra or {},
        }
        torch.save(state, tmp / "state.pt")
        meta = {
            "step": step,
            "tokens_seen": tokens_seen,
            "data": data_state,
            "config": config,
            "extra": extra or {},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / "state.pt").is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in `output_dir`, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Load model (and optimizer) state from checkpoint dir `path` into a model of any world size / wrapper
    (every rank calls this; FSDP ranks keep their shard); returns the whole state dict (step, data,
    tokens_seen, rng, config, extra) for the caller to restore the rest."""
    from training.parallel import load_full_state

    file = Path(path) / "state.pt"
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    expected = set(model.state_dict())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    unexpected = sorted(set(state["model"]) - expected)
    missing = sorted(trainable - set(state["model"]))
    if unexpected or missing:
        raise RuntimeError(
            f"checkpoint {path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    load_full_state(model, optimizer, state["model"], state["optimizer"] if optimizer is not None else None)
    return state


def export_hf(
    model: Any, tokenizer: Any, out_dir: str | Path, state_dict: dict[str, Any] | None = None
) -> Path:
    """Save `model` (safetensors) and `tokenizer` with `save_pretrained` into `out_dir`, replacing it atomically;
    the result loads with `AutoModelForCausalLM.from_pretrained(out_dir)` / `AutoTokenizer.from_pretrained`.
    `state_dict`: the gathered full weights of a sharded model (parallel.gathered_model_state)."""
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        if state_dict is not None:
            model.save_pretrained(tmp, state_dict=state_dict)
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
