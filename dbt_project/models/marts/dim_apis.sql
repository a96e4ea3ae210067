-- One row per distinct API operation: identical operations (same content hash, e.g. the same
-- endpoint in two spec versions) are counted once; n_copies says how many rows they merged.
with operations as (
    select * from {{ ref('stg_forge__api_operations') }}
),

ranked as (
    select
        *,
        row_number() over (partition by content_sha256 order by version desc, api_id) as copy_rank,
        count(*) over (partition by content_sha256) as n_copies
    from operations
),

final as (
    select
        api_id,
        source,
        provider,
        api_name,
        version,
        function_name,
        method,
        path,
        summary,
        description,
        parameters,
        responses,
        n_params,
        license,
        source_uri,
        fetched_at,
        content_sha256,
        n_copies,
        is_heldout
    from ranked
    where copy_rank = 1
)

select * from final
