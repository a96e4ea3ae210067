-- HumanEval's benchmark text (prompts and canonical solutions) for decontamination.
with source as (
    select * from {{ source('raw', 'humaneval_items') }}
),

final as (
    select
        item_id,
        part,
        text,
        source_uri
    from source
)

select * from final
