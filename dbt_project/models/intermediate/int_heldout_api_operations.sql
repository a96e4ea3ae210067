-- Operations of the held-out providers: never trained on, the unseen-API benchmark's source.
with apis as (
    select * from {{ ref('stg_forge__api_operations') }}
),

final as (
    select * from apis where is_heldout
)

select * from final
