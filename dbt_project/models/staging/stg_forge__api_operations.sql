-- One row per API operation from every source: OpenAPI operations, Python functions, hub entry
-- points and signatures from crawled docs (four raw tables of one schema, unioned by name).
with openapi as (
    select * from {{ source('raw', 'openapi_operations') }}
),

python_modules as (
    select * from {{ source('raw', 'python_module_operations') }}
),

hub_docs as (
    select * from {{ source('raw', 'hub_doc_operations') }}
),

crawled as (
    select * from {{ source('raw', 'web_docs_operations') }}
),

source as (
    select * from openapi
    union all by name
    select * from python_modules
    union all by name
    select * from hub_docs
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
        servers::json as servers,
        security::json as security,
        -- spec defects of the operation (OpenAPI: unresolved $ref, parameter in no valid location,
        -- invalid schema), a JSON list of {reason, detail}; '[]' for the other sources
        coalesce(defects, '[]')::json as defects,
        coalesce(json_array_length(defects::json), 0) > 0 as is_defective,
        coalesce(len(json_keys(parameters::json, '$.properties')), 0) as n_params,
        source_uri,
        coalesce(license, 'unknown') as license,
        fetched_at,
        content_sha256,
        list_contains({{ heldout_providers_list() }}, provider) as is_heldout
    from source
)

select * from final
