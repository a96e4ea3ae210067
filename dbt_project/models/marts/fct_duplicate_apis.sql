-- One row per API row that dim_apis merged away: the same operation (operation_sha256) as a kept
-- row, with the api_id it was merged into and why.
with ranked as (
    select * from {{ ref('int_ranked_api_operations') }}
),

final as (
    select
        api_id,
        kept_api_id,
        operation_sha256,
        source,
        provider,
        api_name,
        function_name,
        version,
        kept_version,
        kept_api_name,
        source_uri,
        -- api_id covers the key's fields plus api_name and version, so a copy with both equal to
        -- the kept row's is the same api_id read twice (a raw table holding the row in two files).
        -- A service file per version (github.com ghes-3.7 / ghes-3.8) differs in api_name only.
        case
            when version <> kept_version then 'same_operation_other_version'
            when api_name <> kept_api_name then 'same_operation_other_api'
            else 'identical_operation'
        end as reason
    from ranked
    where copy_rank > 1
)

select * from final
