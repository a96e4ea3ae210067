"""Synthesized function-calling trajectories, every call executed by the mock executor.

Grain: ``per_api`` trajectories anchored on each API operation (row), each with a pattern drawn
from ``patterns`` (weights) among those the operation's API allows. Tools shown to the model come
from the anchor's API (provider, api_name, version), where function names are unique. Rows follow
forge.schemas.TRAJECTORIES; an invalid trajectory is yielded with ``is_valid`` False and counted
in ``stats`` under ``invalid_<reason>``; rows not used at all are counted as ``heldout``,
``bad_parameters`` or ``cannot_satisfy``. Deterministic for a seed: each trajectory draws from
``random.Random(f"{seed}|{api_id}|{k}")``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from forge.argsynth import CannotSatisfy, generate_arguments, name_tokens
from forge.executor import MockExecutor, success_response
from forge.io import sha256_text
from forge.stats import StepStats
from forge.textgen import TemplateGenerator  # noqa: F401  (replaced below)
