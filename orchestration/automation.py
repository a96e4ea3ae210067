"""Who owns each asset and when it rebuilds itself: declarative automation, per asset.

The conditions (evaluated by ``automation_sensor``, off until turned on in the UI, like the weekly
schedule) say, per asset:

* source ingest (an ``ingest`` asset with no upstream asset): on a weekly cron, Mondays 03:00 UTC,
  the same tick as ``weekly_rebuild_schedule`` — a re-crawl or re-read; unchanged inputs leave the
  fingerprints unchanged, so what follows is cheap;
* everything derived from data (ingest assets with upstream, dbt models, corpus): ``eager`` —
  rebuilt as soon as an upstream asset has a new materialization;
* training: ``on_cron`` Mondays 05:00 UTC — a GPU job is started at most once a week, and only
  after every upstream asset was updated since that tick;
* evaluation: ``eager`` — every new model is scored at once (and the promotion check runs);
* the recipe study (``research`` group, ablation checkpoints and their evaluations): no condition;
  it is launched by hand.

Owners and groups are set here too, so the UI names a team for every asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dagster import AssetSpec, AutomationCondition, map_asset_specs

WEEKLY_SOURCES_CRON = "0 3 * * 1"
WEEKLY_TRAINING_CRON = "0 5 * * 1"
#: the owner named in the UI, per group
OWNERS = {
    "ingest": "team:data",
    "warehouse": "team:data",
    "corpus": "team:data",
    "training": "team:training",
    "evaluation": "team:evaluation",
    "research": "team:research",
}
#: asset key prefixes of the recipe study outside its own group: launched by hand
MANUAL_PREFIXES = ("ablation", "ablation_eval", "research")


def condition_for(spec: AssetSpec) -> AutomationCondition | None:
    """The automation condition of one asset (see the module docstring)."""
    if spec.key.path[0] in MANUAL_PREFIXES or spec.group_name == "research":
        return None
    if spec.group_name == "training":
        return AutomationCondition.on_cron(WEEKLY_TRAINING_CRON, "UTC")
    if spec.group_name == "ingest" and not spec.deps:
        return AutomationCondition.on_cron(WEEKLY_SOURCES_CRON, "UTC")
    return AutomationCondition.eager()


def _with_policy(spec: AssetSpec) -> AssetSpec:
    owners = list(spec.owners) or [OWNERS.get(spec.group_name or "", "team:data")]
    return spec.replace_attributes(owners=owners, automation_condition=condition_for(spec))


def with_policies(assets: Sequence[Any]) -> list[Any]:
    """``assets`` with owners and automation conditions set on every spec."""
    return list(map_asset_specs(_with_policy, assets))


def automated_keys(assets: Iterable[Any]) -> set[str]:
    """The keys (user strings) that carry an automation condition."""
    return {
        key.to_user_string()
        for a in assets
        for key, cond in a.automation_conditions_by_key.items()
        if cond is not None
    }
