with source as (
    select * from {{ source('raw', 'api_operations') }}
),

final as (
    select
        api_id,
        source,
        provider,
        api_name,
        coalesce(version, '') as version,
        function_name,
        method,
        path,
        coalesce(summary, '') as summary,
        coalesce(description, '') as description,
        parameters::json as parameters,
        responses::json as responses,
        tags::json as tags,
        coalesce(len(json_keys(parameters::json, '$.properties')), 0) as n_params,
        source_uri,
        coalesce(license, 'unknown') as license,
        fetched_at,
        content_sha256,
        list_contains({{ heldout_providers_list() }}, provider) as is_heldout
    from source
)

select * from final
