"""Training library: model init, packed-shard CPT, LoRA/full SFT, checkpoints, metrics sinks.

Plain PyTorch / transformers / peft / mlflow; no orchestrator. Entry points: `training.run(command, cfg,
sinks)` for callers in Python (the Dagster Pipes wrapper), `python -m training {init,cpt,sft} --config
FILE` (also under `torchrun`). Importing the package is cheap: torch loads when a stage runs.
"""

from training.config import (
    RunConfig,
    debug_config,
    from_profile,
    load_config,
    to_dict,
    validate_profile_sections,
)
from training.stages import COMMANDS, init_base, run

__all__ = [
    "COMMANDS",
    "RunConfig",
    "debug_config",
    "from_profile",
    "init_base",
    "load_config",
    "run",
    "to_dict",
    "validate_profile_sections",
]
