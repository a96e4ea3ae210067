"""The profile's ``evaluation`` section, one model per benchmark; the defaults live here only.

Strict models: an unknown key is an error. The runners in :mod:`evaluation.pipeline` read the
dumped mapping (``model_dump()``), so every setting they see has its value from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: BFCL's non-live Python categories this harness scores.
DEFAULT_BFCL_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BfclEvalConfig(_Section):
    """``evaluation.bfcl``: categories of the official data, items per category, generation budget."""

    categories: list[str] = DEFAULT_BFCL_CATEGORIES
    #: first N items of each category (None: all)
    limit_per_category: int | None = None
    #: first N conversations of each multi-turn category (None: ``limit_per_category``); a conversation
    #: is many generations, so a quick profile can take fewer of them than of single-turn items
    multi_turn_limit_per_category: int | None = None
    #: tokens generated per answer
    max_new_tokens: int = 128
    #: engine slots (prompts decoded at once)
    batch_size: int = 8
    #: the multi-turn environment classes unpacked from the wheel (relative to the repository root);
    #: None: beside the data directory, where the download unpacks them
    environments_dir: str | None = None
    #: multi-turn: model replies per user turn before the conversation is force-quit (BFCL's 20)
    max_steps_per_turn: int = 20
    #: multi-turn: seconds one environment request may take before the conversation is ended
    step_timeout_s: float = 30.0


class UnseenConfig(_Section):
    """``evaluation.unseen``: how the unseen-API benchmark is built (``n_items``, ``seed``) and run."""

    #: items built from the held-out providers' operations
    n_items: int = 200
    #: seed of the item builder
    seed: int = 0
    #: first N items of each category when scoring (None: all)
    limit_per_category: int | None = None
    max_new_tokens: int = 128
    batch_size: int = 8


class PerplexityConfig(_Section):
    """``evaluation.perplexity``: held-out documents per category, and the window length in tokens."""

    max_docs_per_category: int = 50
    seq_len: int = 256


class HumanEvalConfig(_Section):
    """``evaluation.humaneval``: which problems, generation budget, and the sandbox's limits."""

    #: a local ``problems.jsonl`` (relative to the repository root) instead of the downloaded wheel's
    local_path: str | None = None
    #: first N problems (None: all 164)
    limit: int | None = None
    max_new_tokens: int = 384
    batch_size: int = 16
    #: seconds a completion's tests may run
    timeout_s: float = 10.0
    #: address-space limit of the sandboxed process, MiB
    memory_mb: int = 1024


class EvaluationConfig(_Section):
    """``evaluation``: one section per benchmark."""

    bfcl: BfclEvalConfig = BfclEvalConfig()
    unseen: UnseenConfig = UnseenConfig()
    perplexity: PerplexityConfig = PerplexityConfig()
    humaneval: HumanEvalConfig = HumanEvalConfig()
