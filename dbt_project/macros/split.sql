{#
  The one train/validation split of every table that assigns `split`.

  A row's split is decided by its split key alone: documents derived from the same source row get
  the same key, so they land on the same side in every table. A trajectory's corpus document
  ('traj:<id>' in fct_corpus_documents) and its SFT example (fct_sft_examples) share the key
  'trajectory:<trajectory_id>'; every other document is keyed by its doc_id. Held-out perplexity
  therefore never scores a text whose trajectory was trained on in SFT or CPT.
#}

{# The split key of a trajectory, shared by its corpus document and its SFT example. #}
{% macro trajectory_split_key(trajectory_id) -%}
  ('trajectory:' || {{ trajectory_id }})
{%- endmacro %}

{# The split key of a corpus document: its trajectory's key, else its doc_id. #}
{% macro document_split_key(doc_id, source_table, source_row_id) -%}
  (case when {{ source_table }} = 'trajectories' then {{ trajectory_split_key(source_row_id) }} else {{ doc_id }} end)
{%- endmacro %}

{# 'validation' for `validation_pct` percent of split keys (by hash), else 'train'. #}
{% macro split_of(split_key) -%}
  (case when hash({{ split_key }}) % 100 < {{ var('validation_pct', 2) }} then 'validation' else 'train' end)
{%- endmacro %}
