"""Great Expectations suites for the warehouse marts, and a runner that reports per expectation.

The suites are data, not Dagster: ``assets/quality.py`` turns each into a blocking asset check.
A failed expectation is reported with its name, column and how many rows broke it, so the check
result in the Dagster UI says exactly what went wrong.

Each suite has two parts: the mart's invariants (keys, JSON, value sets), and **distribution drift**
against the previous materialization (``forge.checks_drift``): the share of each category and
source, the length quantiles and the row count, compared with the profile that the last passing
check stored beside the warehouse.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from forge.checks_drift import DriftConfig, drift_expectations, with_drift_columns
from forge.synth.trajectories import PATTERNS

log = logging.getLogger(__name__)

CATEGORIES = ["agent", "code", "text"]
#: every category a corpus document may have: the three above, and ``retrieved`` (general documents
#: the seed classifier kept) when the profile runs retrieval
CORPUS_CATEGORIES = [*CATEGORIES, "retrieved"]
FUNCTION_NAME_REGEX = r"^[A-Za-z0-9_.\-]{1,64}$"


def _expectations(table: str, min_chars: int) -> list[Any]:
    """The expectation objects of one mart's suite (built lazily: importing GX is slow)."""
    import great_expectations as gx

    E = gx.expectations
    if table == "fct_corpus_documents":
        return [
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeUnique(column="doc_id"),
            E.ExpectColumnValuesToNotBeNull(column="text"),
            # Forge's filters drop documents shorter than this; a shorter one means a source
            # bypassed them.
            E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=min_chars),
            E.ExpectColumnValuesToBeInSet(column="category", value_set=CORPUS_CATEGORIES),
            E.ExpectColumnDistinctValuesToContainSet(column="category", value_set=CATEGORIES),
            E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation"]),
            E.ExpectColumnValuesToNotBeNull(column="source_uri"),
            E.ExpectColumnValuesToBeBetween(column="n_tokens_est", min_value=1),
        ]
    if table == "fct_sft_examples":
        return [
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeUnique(column="example_id"),
            E.ExpectColumnValuesToBeJsonParseable(column="messages"),
            E.ExpectColumnValuesToBeJsonParseable(column="tools"),
            E.ExpectColumnValuesToBeInSet(column="pattern", value_set=list(PATTERNS)),
        ]
    if table == "dim_apis":
        return [
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeUnique(column="api_id"),
            E.ExpectColumnValuesToMatchRegex(column="function_name", regex=FUNCTION_NAME_REGEX),
            E.ExpectColumnValuesToBeJsonParseable(column="parameters"),
            E.ExpectColumnValuesToNotBeNull(column="provider"),
        ]
    if table == "fct_eval_holdout":
        return [
            E.ExpectColumnValuesToBeUnique(column="api_id"),
            E.ExpectColumnValuesToBeJsonParseable(column="parameters"),
            E.ExpectColumnValuesToNotBeNull(column="provider"),
        ]
    if table == "fct_contamination":
        # empty is fine (nothing leaked); every row names the document and the benchmark item
        return [
            E.ExpectColumnValuesToNotBeNull(column="doc_id"),
            E.ExpectColumnValuesToNotBeNull(column="benchmark"),
            E.ExpectColumnValuesToNotBeNull(column="item_id"),
            E.ExpectColumnValuesToBeBetween(column="n_shared_ngrams", min_value=1),
        ]
    if table == "fct_near_duplicate_clusters":
        return [
            E.ExpectColumnValuesToBeUnique(column="doc_id"),
            E.ExpectColumnValuesToNotBeNull(column="cluster_id"),
            E.ExpectColumnValuesToBeBetween(column="similarity_to_kept", min_value=0, max_value=1),
            E.ExpectColumnValuesToBeBetween(column="n_cluster_documents", min_value=2),
            E.ExpectColumnValuesToBeInSet(column="category", value_set=CATEGORIES),
        ]
    if table == "fct_retrieved_documents":
        # empty is fine (retrieval off, or nothing cleared the threshold); every row is a scored
        # general document with a probability, and one in the corpus has its split
        return [
            E.ExpectColumnValuesToBeUnique(column="doc_id"),
            E.ExpectColumnValuesToNotBeNull(column="doc_id"),
            E.ExpectColumnValuesToBeBetween(column="retrieval_score", min_value=0, max_value=1),
            E.ExpectColumnValuesToBeInSet(
                column="source_table", value_set=["code_documents", "text_documents"]
            ),
            E.ExpectColumnValuesToBeInSet(column="general_category", value_set=["code", "text"]),
            E.ExpectColumnValuesToNotBeNull(column="is_in_corpus"),
        ]
    if table == "fct_removed_documents":
        return [
            E.ExpectColumnValuesToNotBeNull(column="doc_id"),
            E.ExpectColumnValuesToNotBeNull(column="reason"),
        ]
    if table == "fct_duplicate_apis":
        return [
            E.ExpectColumnValuesToNotBeNull(column="api_id"),
            E.ExpectColumnValuesToNotBeNull(column="kept_api_id"),
            E.ExpectColumnValuesToNotBeNull(column="reason"),
        ]
    raise KeyError(f"no expectation suite for table {table!r}")


SUITE_TABLES = (
    "fct_corpus_documents",
    "fct_sft_examples",
    "dim_apis",
    "fct_eval_holdout",
    "fct_contamination",
    "fct_near_duplicate_clusters",
    "fct_removed_documents",
    "fct_duplicate_apis",
    "fct_retrieved_documents",
)


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    observed: Any = None
    #: what a drift expectation compares (e.g. "share of category = 'agent' was 0.33")
    detail: str | None = None


@dataclass
class SuiteResult:
    table: str
    n_rows: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: all {len(self.outcomes)} expectations passed on {self.n_rows} rows"
        parts = [
            f"{o.expectation}({o.column or ''}) failed "
            + (
                f"[{o.detail}; observed {o.observed}]"
                if o.detail
                else f"on {o.unexpected_count if o.unexpected_count is not None else '?'} rows"
            )
            for o in self.failed
        ]
        return f"{self.table}: " + "; ".join(parts)


def validate_dataframe(
    table: str,
    df: pd.DataFrame,
    *,
    min_chars: int = 50,
    baseline: dict[str, Any] | None = None,
    drift: DriftConfig | None = None,
) -> SuiteResult:
    """Validate ``df`` (the mart's rows) against the table's suite with an ephemeral GX context;
    with ``baseline`` (the previous materialization's profile, ``forge.checks_drift.profile``) the
    drift expectations are added too."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    expectations = _expectations(table, min_chars)
    if baseline is not None:
        df = with_drift_columns(table, df)
        expectations += drift_expectations(table, baseline, len(df), drift or DriftConfig())
    context = gx.get_context(mode="ephemeral")
    # no "Calculating Metrics" bars in a run's output (GX passes disable= itself, so TQDM_DISABLE is not read)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(name=f"{table}_source")
    asset = source.add_dataframe_asset(name=table)
    batch_def = asset.add_batch_definition_whole_dataframe(f"{table}_batch")
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    suite = context.suites.add(gx.ExpectationSuite(name=f"{table}_suite"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    validation = batch.validate(suite, result_format="SUMMARY")

    result = SuiteResult(table=table, n_rows=len(df))
    for r in validation.results:
        cfg = r.expectation_config
        res = r.result or {}
        result.outcomes.append(
            ExpectationOutcome(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=res.get("unexpected_count"),
                observed=res.get("observed_value", res.get("unexpected_percent")),
                detail=(cfg.meta or {}).get("drift"),
            )
        )
    log.info(result.summary())
    return result


def check_mart(
    table: str,
    df: pd.DataFrame,
    baseline_file: Path,
    *,
    min_chars: int = 50,
    drift: DriftConfig | None = None,
) -> SuiteResult:
    """The blocking check of one mart: its suite, plus drift against the profile stored in
    ``baseline_file`` by the last passing check (none on the first run). Only a passing check
    stores the new profile, so a drift keeps failing until it is fixed or accepted (by deleting
    ``baseline_file``)."""
    from forge.checks_drift import read_baseline, write_baseline

    result = validate_dataframe(
        table, df, min_chars=min_chars, baseline=read_baseline(baseline_file), drift=drift
    )
    if result.success:
        write_baseline(baseline_file, table, df)
    return result
