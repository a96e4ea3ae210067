"""Trajectory synthesis as a stage: the ingested API tables -> raw.trajectories.

:class:`SynthesisConfig` is the profile's ``synthesis`` section; :class:`GeneratorConfig` its
``generator`` (which text generator writes the user requests and final answers). The held-out
providers (``sources.heldout_providers``) are an input: their APIs are never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from forge.core.stage import Stage, StageConfig


class GeneratorConfig(StageConfig):
    """``synthesis.generator``: templates, or an LLM (``forge.synth.generators.make_generator``).

    Settings left unset take the generator's own defaults.
    """

    kind: Literal["template", "openai", "transformers"] = "template"
    #: openai: the OpenAI-compatible endpoint and model name
    base_url: str | None = None
    model: str | None = None
    #: openai: the environment variable holding the API key (read when the generator is built)
    api_key_env: str | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    backoff_s: float | None = None
    max_tokens: int | None = None
    #: transformers: a local causal-LM directory, the device it runs on, tokens per answer
    model_dir: str | None = None
    device: str | None = None
    max_new_tokens: int | None = None
    #: both LLM kinds: sampling temperature
    temperature: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The plain mapping ``make_generator`` reads (unset settings left out)."""
        return self.model_dump(exclude_none=True)


class SynthesisConfig(StageConfig):
    """``synthesis``: how many conversations per API, from which seed, on how many processes."""

    seed: int = 0
    #: conversations synthesized per API operation
    per_api: int = 1
    #: processes (1: in this process); keep 1 with an LLM generator
    workers: int = 1
    #: operations per chunk: the unit of work and of memory
    chunk_ops: int = 4000
    generator: GeneratorConfig = GeneratorConfig()


def synthesize_trajectories(
    cfg: SynthesisConfig,
    *,
    heldout_providers: Sequence[str],
    out_dir: Path,
    warehouse: Path | None = None,
    api_dirs: Sequence[Path] = (),
) -> dict[str, Any]:
    """Executed, validated function-calling conversations streamed to ``out_dir/part-*.parquet``
    chunk by chunk (memory stays flat as the count grows).

    The input is the warehouse's ``dim_apis`` when ``warehouse`` is given (the pipeline: an
    operation merged across spec versions is synthesized once), else the raw API tables in
    ``api_dirs`` (the command line, without a warehouse)."""
    import tempfile

    from forge.sources.dim_apis import export_dim_apis
    from forge.synth.parallel import synthesize_to_parquet

    if (warehouse is None) == (not api_dirs):
        raise ValueError("give either the warehouse (dim_apis) or the API table directories, not both")

    def run(inputs: list[Path]) -> dict[str, Any]:
        return synthesize_to_parquet(
            inputs,
            out_dir,
            seed=cfg.seed,
            per_api=cfg.per_api,
            heldout_providers=list(heldout_providers),
            workers=cfg.workers,
            chunk_ops=cfg.chunk_ops,
            generator=cfg.generator.as_dict(),
        )

    if warehouse is None:
        return run(list(api_dirs))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
        return {**run([export_dim_apis(warehouse, Path(tmp) / "dim_apis.parquet")]), "input": "dim_apis"}


SYNTHESIS_STAGE = Stage("trajectories", SynthesisConfig, synthesize_trajectories)
