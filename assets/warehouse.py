"""The dbt-duckdb project as Dagster assets: one asset per model, lineage to the raw assets.

dbt is the only writer of the warehouse file (see DESIGN.md); the assets run in the
``duckdb_writer`` pool so two runs never open it for writing at once.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetCheckSpec, AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from assets.resources import ForgeResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest() -> Path:
    """``dbt parse`` once when the manifest is missing (fresh clone), so Definitions can load."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


class ForgeDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None):
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key.path[0] == "raw":
            return spec  # sources keep their ingest keys and groups
        spec = spec.replace_attributes(group_name="warehouse", kinds={"dbt", "duckdb"})
        reads = read_assets(manifest["nodes"].get(unique_id, {}))
        return spec.merge_attributes(deps=reads) if reads else spec

    def get_asset_check_spec(self, asset_spec, manifest: Mapping[str, Any], unique_id: str, project):
        """dbt tests as checks, each described in the UI: the test's own description, else what it
        asserts (generic test, column, arguments) or the singular test's file."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return AssetCheckSpec(
            spec.name,
            asset=spec.asset_key,
            description=describe_dbt_test(manifest["nodes"][unique_id]),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
            partitions_def=spec.partitions_def,
        )


def read_assets(node: Mapping[str, Any]) -> list[AssetKey]:
    """Assets a model reads by path rather than through a dbt source (``meta.reads_assets``, keys as
    ``raw/name``): declared upstream so that Dagster runs the model after them."""
    meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
    return [AssetKey(key.split("/")) for key in meta.get("reads_assets") or []]


def describe_dbt_test(node: Mapping[str, Any]) -> str:
    if node.get("description"):
        return node["description"]
    meta = node.get("test_metadata") or {}
    if not meta:
        return (
            f"dbt singular test `{node['name']}` ({node.get('original_file_path', '')}): it returns no rows."
        )
    args = {k: v for k, v in (meta.get("kwargs") or {}).items() if k not in ("model", "column_name")}
    column = f" on column `{node['column_name']}`" if node.get("column_name") else ""
    extra = f" with {args}" if args else ""
    return f"dbt test `{meta['name']}`{column}{extra}."


def mart_key(name: str) -> AssetKey:
    return AssetKey([name])


def build_dbt_assets():
    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        dagster_dbt_translator=ForgeDbtTranslator(),
        pool="duckdb_writer",
    )
    def warehouse_models(context: AssetExecutionContext, dbt: DbtCliResource, profile: ForgeResource):
        profile.export_environment()
        # cautious: a subset (say `*tokenizer`) runs only the tests whose every parent it builds; eager
        # would also run relationship tests that read a mart the subset never built, and fail on them.
        args = ["build", "--indirect-selection", "cautious", "--vars", profile.dbt_vars_json()]
        yield from dbt.cli(args, context=context).stream()

    return warehouse_models
