{# The profile's held-out providers as a DuckDB list literal of strings. #}
{% macro heldout_providers_list() -%}
  {%- set providers = var('heldout_providers', []) -%}
  {%- if providers | length == 0 -%}
    []::varchar[]
  {%- else -%}
    [{%- for p in providers -%}'{{ p | replace("'", "''") }}'{%- if not loop.last -%}, {% endif -%}{%- endfor -%}]
  {%- endif -%}
{%- endmacro %}

{# True when a license may enter training ("*" in allowed_licenses allows all). #}
{% macro license_allowed(column) -%}
  {%- set allowed = var('allowed_licenses', ['*']) -%}
  {%- if '*' in allowed -%}
    true
  {%- else -%}
    {{ column }} in ({%- for l in allowed -%}'{{ l | replace("'", "''") }}'{%- if not loop.last -%}, {% endif -%}{%- endfor -%})
  {%- endif -%}
{%- endmacro %}
