{% macro drop_backup_before_commit() %}
  {#- dbt's view and table materializations build <model>__dbt_tmp, rename the live relation to
      <model>__dbt_backup and the new one into its place, COMMIT, and only then drop the backup: a
      process killed between the commit and the drop leaves the backup in the warehouse, visible to
      every reader until the next build. Run as a post-hook inside the transaction (dbt_project.yml),
      this drops the backup before the commit, so the swap lands whole or not at all; the
      materialization's own drop after the commit then finds nothing. -#}
  {%- if execute -%}
    {%- set backup = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__dbt_backup') -%}
    {%- if backup is not none -%}
      {%- do adapter.drop_relation(backup) -%}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}
