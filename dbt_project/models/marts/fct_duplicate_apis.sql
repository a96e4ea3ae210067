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
        source_uri,
        -- api_id covers the key's fields plus the version, so a copy of the kept version is the
        -- same api_id read twice (a raw table holding the row in two files).
        case
            when version <> kept_version then 'same_operation_other_version'
            else 'identical_operation'
        end as reason
    from ranked
    where copy_rank > 1
)

select * from final
