-- One row per operation of a held-out provider: the source of the unseen-API benchmark.
with heldout as (
    select * from {{ ref('int_heldout_api_operations') }}
),

final as (
    select
        api_id,
        provider,
        api_name,
        function_name,
        method,
        path,
        summary,
        description,
        parameters::varchar as parameters,
        responses::varchar as responses,
        license,
        source_uri
    from heldout
)

select * from final
