with source as (
    select * from {{ source('raw', 'bfcl_items') }}
),

final as (
    select
        item_id,
        category,
        question::json as question,
        functions::json as functions,
        ground_truth::json as ground_truth,
        question_text,
        source_uri
    from source
)

select * from final
