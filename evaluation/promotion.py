"""Champion / challenger promotion in the MLflow model registry.

Every registered SFT version gets the alias ``challenger`` (the scorecard asset sets it); the
``champion`` alias marks the version that serves. A challenger replaces the champion only when

1. it beats the champion on BFCL overall (``overall_mean``: the unweighted mean of the per-category
   accuracies) by more than chance: the 95% interval of the difference, from a paired bootstrap
   over the items both models answered (resampled within each category, the same items for both
   models), lies entirely above zero; and
2. it loses at most ``max_retention_loss`` of general retention: on every configured held-out
   category (general text and code by default) its perplexity is at most
   ``(1 + max_retention_loss)`` times the champion's.

The first version, with no champion to beat, becomes champion. The decision and every number it
rests on are returned (:class:`Decision`) for the asset check's metadata; the evidence of each
version is its scorecard run's ``scorecard/`` artifacts (``scorecard.json`` and the per-item
``bfcl_items.jsonl``), so an old champion is compared on its own recorded items, not re-evaluated.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contracts.io import read_jsonl

CHAMPION = "champion"
CHALLENGER = "challenger"
#: the scorecard's files that hold a version's evidence (under the run's ``scorecard/`` artifacts)
SCORECARD_JSON = "scorecard.json"
BFCL_ITEMS = "bfcl_items.jsonl"


class PromotionConfig(BaseModel):
    """``registry.promotion``: when a challenger replaces the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: largest allowed relative increase of held-out perplexity per category (0.05: 5% worse)
    max_retention_loss: float = Field(default=0.05, ge=0)
    #: the held-out categories that measure general retention (``heldout_texts`` file stems)
    retention_categories: list[str] = ["text", "code"]
    #: bootstrap resamples and the interval's ``1 - alpha`` coverage
    n_boot: int = Field(default=2000, ge=100)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    seed: int = 0


@dataclass(frozen=True)
class Evidence:
    """What a version is judged on: its BFCL item rows (``id``, ``category``, ``valid``) and its
    held-out perplexity per category."""

    bfcl_rows: list[dict[str, Any]]
    perplexity: dict[str, float]

    @classmethod
    def from_scorecard_dir(cls, directory: Path) -> Evidence:
        card = json.loads((directory / SCORECARD_JSON).read_text())
        ppl = {
            row["benchmark"].removeprefix("ppl_"): float(row["value"])
            for row in card["rows"]
            if row["benchmark"].startswith("ppl_") and row["metric"] == "ppl" and row["value"] is not None
        }
        rows = read_jsonl(directory / BFCL_ITEMS) if (directory / BFCL_ITEMS).exists() else []
        return cls(bfcl_rows=[{k: r[k] for k in ("id", "category", "valid")} for r in rows], perplexity=ppl)


@dataclass
class Decision:
    """``promote``: move ``champion`` to the challenger. ``action`` names the outcome
    (``promoted``, ``refused``, ``first_champion``, ``already_champion``, ``no_challenger``);
    ``reasons`` say why in words, ``numbers`` hold every figure used."""

    action: str
    promote: bool
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)


def overall_mean(rows: list[dict[str, Any]]) -> float:
    """BFCL's ``overall_mean`` of item rows: the unweighted mean of per-category accuracies."""
    by_cat: dict[str, list[float]] = {}
    for row in rows:
        by_cat.setdefault(row["category"], []).append(float(bool(row["valid"])))
    return float(np.mean([np.mean(v) for v in by_cat.values()])) if by_cat else float("nan")


def paired_overall_difference(
    challenger: list[dict[str, Any]],
    champion: list[dict[str, Any]],
    *,
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, float | int]:
    """Challenger minus champion on ``overall_mean`` over the items both answered, with its
    percentile-bootstrap ``1 - alpha`` interval (items resampled within each category, the same
    resample for both models: the pairing removes the items' own difficulty from the noise)."""
    champ = {r["id"]: r for r in champion}
    by_cat: dict[str, list[tuple[float, float]]] = {}
    for row in challenger:
        other = champ.get(row["id"])
        if other is not None and other["category"] == row["category"]:
            by_cat.setdefault(row["category"], []).append(
                (float(bool(row["valid"])), float(bool(other["valid"])))
            )
    if not by_cat:
        raise ValueError("no BFCL item was answered by both versions: they cannot be compared")
    rng = np.random.default_rng(seed)
    diffs = np.zeros(n_boot)
    point = 0.0
    for pairs in by_cat.values():
        arr = np.asarray(pairs)  # (items, 2): challenger, champion
        delta = arr[:, 0] - arr[:, 1]
        point += delta.mean()
        idx = rng.integers(0, len(delta), size=(n_boot, len(delta)))
        diffs += delta[idx].mean(axis=1)
    k = len(by_cat)
    lo, hi = np.quantile(diffs / k, [alpha / 2, 1 - alpha / 2])
    n = sum(len(p) for p in by_cat.values())
    return {"diff": float(point / k), "lo": float(lo), "hi": float(hi), "n_items": n, "n_categories": k}


def decide(challenger: Evidence, champion: Evidence | None, cfg: PromotionConfig) -> Decision:
    """The promotion rule of the module docstring, as a pure function of the two versions' evidence."""
    if champion is None:
        return Decision(
            "first_champion",
            True,
            ["no champion yet: the first registered version becomes champion"],
            {"challenger.bfcl_overall": overall_mean(challenger.bfcl_rows)},
        )
    numbers: dict[str, Any] = {
        "challenger.bfcl_overall": overall_mean(challenger.bfcl_rows),
        "champion.bfcl_overall": overall_mean(champion.bfcl_rows),
        "max_retention_loss": cfg.max_retention_loss,
    }
    reasons: list[str] = []
    better = False
    try:
        d = paired_overall_difference(
            challenger.bfcl_rows, champion.bfcl_rows, n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed
        )
    except ValueError as exc:
        reasons.append(str(exc))
    else:
        numbers.update({f"bfcl_overall_diff.{k}": v for k, v in d.items()})
        ci = f"{100 * d['diff']:+.1f} points, {100 * (1 - cfg.alpha):.0f}% interval [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"
        better = d["lo"] > 0
        if better:
            reasons.append(f"BFCL overall better beyond the bootstrap interval ({ci})")
        else:
            reasons.append(f"BFCL overall not better beyond the bootstrap interval ({ci})")
    retained = True
    for cat in cfg.retention_categories:
        new, old = challenger.perplexity.get(cat), champion.perplexity.get(cat)
        if new is None or old is None:
            reasons.append(f"retention on {cat!r}: no perplexity for one of the versions (not compared)")
            continue
        change = new / old - 1
        numbers[f"retention.{cat}.challenger_ppl"] = new
        numbers[f"retention.{cat}.champion_ppl"] = old
        numbers[f"retention.{cat}.relative_change"] = change
        if change > cfg.max_retention_loss:
            retained = False
            reasons.append(
                f"general retention on {cat!r} lost: perplexity {old:.3f} -> {new:.3f} "
                f"({100 * change:+.1f}%, bound {100 * cfg.max_retention_loss:.1f}%)"
            )
        else:
            reasons.append(
                f"retention on {cat!r} kept ({100 * change:+.1f}%, bound {100 * cfg.max_retention_loss:.1f}%)"
            )
    promote = better and retained
    return Decision("promoted" if promote else "refused", promote, reasons, numbers)


# ---------------------------------------------------------------------------------- the registry
def _alias_version(client, model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def version_evidence(client, version) -> Evidence:
    """Download a version's scorecard artifacts (from the run it was registered from) and read them."""
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(version.run_id, "scorecard", tmp)
        return Evidence.from_scorecard_dir(Path(local))


def promote_challenger(tracking_uri: str, model_name: str, cfg: PromotionConfig) -> Decision:
    """Judge ``model_name@challenger`` against ``@champion`` and apply the decision: on promotion
    ``champion`` moves to the challenger's version and ``challenger`` is removed (a refused
    challenger keeps its alias, so ``models:/<name>@challenger`` is the candidate still waiting).
    Every decision is also written on the challenger version as tags (``promotion.*``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    chal = _alias_version(client, model_name, CHALLENGER)
    champ = _alias_version(client, model_name, CHAMPION)
    if chal is None:
        where = f"version {champ.version} is champion" if champ else "no version registered"
        return Decision("no_challenger", False, [f"no @{CHALLENGER} to judge ({where})"], {})
    numbers = {"challenger.version": int(chal.version)}
    if champ is not None:
        numbers["champion.version"] = int(champ.version)
    if champ is not None and champ.version == chal.version:
        client.delete_registered_model_alias(model_name, CHALLENGER)
        return Decision("already_champion", False, [f"version {chal.version} is already champion"], numbers)
    decision = decide(version_evidence(client, chal), version_evidence(client, champ) if champ else None, cfg)
    decision.numbers = {**numbers, **decision.numbers}
    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, chal.version)
        client.delete_registered_model_alias(model_name, CHALLENGER)
    client.set_model_version_tag(model_name, chal.version, "promotion.decision", decision.action)
    client.set_model_version_tag(
        model_name, chal.version, "promotion.reasons", "; ".join(decision.reasons)[:5000]
    )
    return decision


def alias_scorecard(tracking_uri: str, model_name: str, alias: str) -> tuple[int, dict[str, Any]] | None:
    """``(version, scorecard)`` of ``model_name@alias`` from its run's artifacts; None when the alias
    (or the model) does not exist yet."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    version = _alias_version(client, model_name, alias)
    if version is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(version.run_id, f"scorecard/{SCORECARD_JSON}", tmp))
        return int(version.version), json.loads(local.read_text())
