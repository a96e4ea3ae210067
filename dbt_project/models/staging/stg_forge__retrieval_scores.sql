-- One row per general document (raw code_documents and text_documents) the retrieval stage scored
-- (forge.text.retrieval): its out-of-fold score and whether it cleared the threshold. With
-- retrieval off in the profile (var retrieval_enabled false) no file is read and the view is empty.
-- depends_on: {{ source('raw', 'retrieval_scores') }}
{% if var('retrieval_enabled') %}
with source as (
    select * from {{ source('raw', 'retrieval_scores') }}
),
{% else %}
with source as (
    select
        cast(null as varchar) as doc_id,
        cast(null as varchar) as source_table,
        cast(null as float) as score,
        cast(null as smallint) as fold,
        cast(null as boolean) as is_retrieved
    where false
),
{% endif %}

final as (
    select
        doc_id,
        source_table,
        cast(score as double) as retrieval_score,
        cast(fold as integer) as fold,
        is_retrieved
    from source
)

select * from final
