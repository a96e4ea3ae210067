"""Distribution drift of a mart against its previous materialization, as Great Expectations.

A mart's *profile* is its row count, the share of each value of its category/source columns, and
quantiles of a length (characters of a text, or a count). The last profile that passed its check is
stored as JSON beside the warehouse (``<warehouse dir>/drift/<table>.json``); the next check turns it
into expectations on the new rows:

- share of each previous value ``v`` of a column within ``max_share_delta`` of its old share, as
  ``ExpectColumnValuesToBeInSet([v], mostly=old - delta)`` (a floor) and
  ``ExpectColumnValuesToNotBeInSet([v], mostly=1 - old - delta)`` (a ceiling);
- values never seen before at most ``max_share_delta`` of the rows together;
- each length quantile within a factor ``max_quantile_ratio`` of the old one;
- the row count within a factor ``max_row_ratio`` of the old one.

Tables under ``min_rows`` rows (now or before) get no drift expectations: a share of a handful of
rows moves by whole rows. A drift that was intended (a new source, a changed filter) is accepted by
deleting the stored profile: the next check then starts a new baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from forge.core.io import atomic_write_json

#: per mart: the columns whose shares are compared, and the length whose quantiles are (a column,
#: or ``len:<column>`` for the character length of a text column)
DRIFT_COLUMNS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "fct_corpus_documents": (("category", "subcategory"), "n_chars"),
    "fct_sft_examples": (("pattern", "source"), "len:messages"),
    "dim_apis": (("source",), "len:description"),
    "fct_eval_holdout": (("provider",), "len:description"),
    "fct_contamination": (("benchmark",), "n_shared_ngrams"),
    "fct_near_duplicate_clusters": (("category", "source"), "n_chars"),
    "fct_removed_documents": (("reason", "category"), None),
    "fct_duplicate_apis": (("reason", "source"), None),
    "fct_retrieved_documents": (("source_table", "subcategory"), "n_chars"),
}
QUANTILES = (0.1, 0.5, 0.9)
LENGTH = "_length"
#: the most values of one column compared one by one (the rest count as "new" if they grow)
MAX_VALUES = 30


class DriftConfig(BaseModel):
    """``quality.drift``: how far a mart may move from its previous materialization."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: largest change of one value's share (0.15: from 33% to 48% fails)
    max_share_delta: float = Field(0.15, gt=0, le=1)
    #: largest factor between a length quantile and its previous value
    max_quantile_ratio: float = Field(2.0, ge=1)
    #: largest factor between the row count and the previous one
    max_row_ratio: float = Field(3.0, ge=1)
    #: tables smaller than this (now or before) are not checked for drift
    min_rows: int = Field(100, ge=1)


def with_drift_columns(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the share columns as strings (null as ``(null)``) and the length as ``_length``."""
    shares, length = DRIFT_COLUMNS.get(table, ((), None))
    out = df.copy()
    for col in shares:
        if col in out.columns:
            out[col] = out[col].astype("string").fillna("(null)")
    if length and length.startswith("len:"):
        out[LENGTH] = out[length[4:]].fillna("").astype(str).str.len() if length[4:] in out.columns else None
    elif length and length in out.columns:
        out[LENGTH] = pd.to_numeric(out[length], errors="coerce")
    return out


def profile(table: str, df: pd.DataFrame) -> dict[str, Any]:
    """Row count, shares per value of the share columns, length quantiles: the drift baseline."""
    df = with_drift_columns(table, df)
    shares, _ = DRIFT_COLUMNS.get(table, ((), None))
    out: dict[str, Any] = {"table": table, "n_rows": len(df), "shares": {}, "length_quantiles": None}
    for col in shares:
        if col in df.columns and len(df):
            out["shares"][col] = {str(k): float(v) for k, v in df[col].value_counts(normalize=True).items()}
    if LENGTH in df.columns and len(df) and df[LENGTH].notna().any():
        q = df[LENGTH].quantile(list(QUANTILES), interpolation="nearest")
        out["length_quantiles"] = {str(k): float(v) for k, v in q.items()}
    return out


def drift_expectations(table: str, baseline: dict[str, Any], n_rows: int, cfg: DriftConfig) -> list[Any]:
    """The GX expectations that compare a new materialization of ``n_rows`` rows with ``baseline``;
    each carries ``meta["drift"]``, a sentence of what it compares."""
    import great_expectations as gx

    E = gx.expectations
    old_n = int(baseline.get("n_rows") or 0)
    if not cfg.enabled or old_n < cfg.min_rows or n_rows < cfg.min_rows:
        return []
    delta = cfg.max_share_delta
    out: list[Any] = [
        E.ExpectTableRowCountToBeBetween(
            min_value=int(old_n / cfg.max_row_ratio),
            max_value=int(old_n * cfg.max_row_ratio) + 1,
            meta={"drift": f"row count was {old_n}"},
        )
    ]
    for col, shares in (baseline.get("shares") or {}).items():
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:MAX_VALUES]
        for value, share in top:
            what = f"share of {col} = {value!r} was {share:.3f}"
            if share - delta > 0:
                out.append(
                    E.ExpectColumnValuesToBeInSet(
                        column=col, value_set=[value], mostly=share - delta, meta={"drift": what}
                    )
                )
            if share + delta < 1:
                out.append(
                    E.ExpectColumnValuesToNotBeInSet(
                        column=col, value_set=[value], mostly=1 - share - delta, meta={"drift": what}
                    )
                )
        out.append(
            E.ExpectColumnValuesToBeInSet(
                column=col,
                value_set=list(shares),
                mostly=max(0.0, 1 - delta),
                meta={"drift": f"values of {col} never seen before, together at most {delta:.2f} of rows"},
            )
        )
    quantiles = baseline.get("length_quantiles")
    if quantiles:
        r = cfg.max_quantile_ratio
        ranges = [[float(v) / r, float(v) * r] for v in quantiles.values()]
        out.append(
            E.ExpectColumnQuantileValuesToBeBetween(
                column=LENGTH,
                quantile_ranges={"quantiles": [float(q) for q in quantiles], "value_ranges": ranges},
                meta={"drift": f"length quantiles were {quantiles}"},
            )
        )
    return out


def baseline_path(warehouse: str | Path, table: str) -> Path:
    """Where the last passing profile of ``table`` is kept: beside the warehouse file."""
    return Path(warehouse).parent / "drift" / f"{table}.json"


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The stored profile, or None when there is none yet (the first materialization)."""
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_baseline(path: Path, table: str, df: pd.DataFrame) -> dict[str, Any]:
    """Store ``df``'s profile as the next check's baseline (atomically); return it."""
    prof = profile(table, df)
    atomic_write_json(path, prof)
    return prof
