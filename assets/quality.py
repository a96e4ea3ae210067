"""Great Expectations suites on the marts as blocking asset checks.

A failing check stops everything downstream of its mart in the same run, and its result names
each failed expectation with the number of rows that broke it.
"""

import duckdb
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, asset_check

from assets.resources import ForgeResource
from assets.warehouse import mart_key
from forge.checks import SUITE_TABLES, validate_dataframe


def _make_check(table: str):
    @asset_check(
        asset=mart_key(table),
        name=f"gx_{table}",
        blocking=True,
        description=f"Great Expectations suite on {table} (forge.checks); blocks downstream on failure.",
    )
    def _check(context: AssetCheckExecutionContext, profile: ForgeResource) -> AssetCheckResult:
        with duckdb.connect(str(profile.paths.warehouse), read_only=True) as con:
            df = con.sql(f"select * from {table}").df()
        min_chars = profile.settings.warehouse.min_chars
        result = validate_dataframe(table, df, min_chars=min_chars)
        context.log.info(result.summary())
        # dim_apis: distinct APIs per source (openapi_directory, python_module, web_docs, ...)
        by_source = df["source"].value_counts().to_dict() if "source" in df.columns else {}
        return AssetCheckResult(
            passed=result.success,
            severity=AssetCheckSeverity.ERROR,
            description=result.summary(),
            metadata={
                "n_rows": result.n_rows,
                "n_expectations": len(result.outcomes),
                **({"n_by_source": {str(k): int(v) for k, v in by_source.items()}} if by_source else {}),
                "failed": [
                    {"expectation": o.expectation, "column": o.column, "unexpected_count": o.unexpected_count}
                    for o in result.failed
                ],
            },
        )

    return _check


gx_checks = [_make_check(table) for table in SUITE_TABLES]
