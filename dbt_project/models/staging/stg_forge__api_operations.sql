-- OpenAPI operations, Python functions and hub entry points, plus signatures from crawled docs.
with ingested as (
    select * from {{ source('raw', 'api_operations') }}
),

crawled as (
    select * from {{ source('raw', 'web_docs_operations') }}
),

source as (
    select * from ingested
    union all by name
    select * from crawled
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
