-- One row per staged API row, with the version-free key of what a model reads (operation_sha256)
-- and its rank among the rows that share it: rank 1 is the copy dim_apis keeps (the newest
-- version), every other row is listed in fct_duplicate_apis with the api_id it merged into.
with operations as (
    select * from {{ ref('stg_forge__api_operations') }}
),

keyed as (
    select
        *,
        -- content_sha256 (forge.core.ids.API_CONTENT_FIELDS) includes the version, so the same
        -- endpoint in two spec versions never shares it. This key leaves out the version and
        -- what only says where or when a row was read (api_id, source_uri, fetched_at, license),
        -- and api_name: in the OpenAPI directory a version is often a file of its own, so the
        -- service id carries it (github.com ghes-3.7 / ghes-3.8, adyen.com CheckoutService-v71).
        -- Source and provider stay in: a kept row and its copies share is_heldout. json_object
        -- quotes every value, so different rows never give the same string; the JSON columns are
        -- re-serialized in their stored key order, which every writer sorts (json.dumps sort_keys).
        sha256(json_object(
            'source', source,
            'provider', provider,
            'function_name', function_name,
            'method', method,
            'path', path,
            'summary', summary,
            'description', description,
            'parameters', parameters,
            'responses', responses,
            'tags', tags
        )::varchar) as operation_sha256,
        -- Versions compare by their runs of digits, as numbers, left to right: '10.0' > '9.0',
        -- 'v1.10' > 'v1.9', '2024-01-05' > '2023-12-31'. A plain string order would put '9.0'
        -- above '10.0'. A version without digits ('', 'beta') sorts oldest.
        list_transform(
            regexp_extract_all(version, '[0-9]+'), lambda part: try_cast(part as hugeint)
        ) as version_parts
    from operations
),

ranked as (
    select
        *,
        row_number() over newest_first as copy_rank,
        first_value(api_id) over newest_first as kept_api_id,
        first_value(version) over newest_first as kept_version,
        first_value(api_name) over newest_first as kept_api_name
    from keyed
    -- Ties (same digits: 'v2' and '2') go to the string, then the later fetch, then api_id, so
    -- the kept row does not depend on file order.
    window newest_first as (
        partition by operation_sha256
        order by version_parts desc, version desc, fetched_at desc nulls last, api_id
    )
),

per_version as (
    select
        operation_sha256,
        version,
        any_value(version_parts) as version_parts,
        count(*) as n_rows
    from keyed
    group by operation_sha256, version
),

per_operation as (
    select
        operation_sha256,
        cast(sum(n_rows) as bigint) as n_copies,
        count(*) as n_versions,
        list(version order by version_parts desc, version desc) as versions
    from per_version
    group by operation_sha256
),

final as (
    select
        ranked.* exclude (version_parts),
        per_operation.n_copies,
        per_operation.n_versions,
        per_operation.versions
    from ranked
    inner join per_operation using (operation_sha256)
)

select * from final
