-- Operations of the held-out providers: never trained on, the unseen-API benchmark's source.
-- One row per operation, as in dim_apis: an endpoint repeated across spec versions (or service
-- files) is one benchmark candidate, its newest copy, not one per version.
with ranked as (
    select * from {{ ref('int_ranked_api_operations') }}
),

final as (
    select *
    from ranked
    where is_heldout and copy_rank = 1
)

select * from final
